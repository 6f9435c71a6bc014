-- Append the events of several streams of one worker (one call per writer flush).
-- ARGV: P, worker, ttl_ms, live_ms, max_bytes, then per stream:
--   id, first_seq, end_reason ('' = more to come),
--   n_templates, first_template_index, (template_json, template_bytes) * n_templates,
--   n_events, (tag, data) * n_events
-- A tag is a template index (the event is a fragment: data is its part, entry
-- fields t and d) or '=' followed by the SSE event name of a whole event.
-- Writes are idempotent: seqs and templates already stored are skipped, so
-- a retried call after a lost reply changes nothing.
-- -> {id, status} for every stream whose status is not 'ok' ('lost', 'gap').
local worker, ttl_ms, live_ms = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local max_bytes = tonumber(ARGV[5])
local out = {}
local pos = 6

local function append_one()
  local id, first, reason = ARGV[pos], tonumber(ARGV[pos + 1]), ARGV[pos + 2]
  local n_templates, first_template = tonumber(ARGV[pos + 3]), tonumber(ARGV[pos + 4])
  local templates_at = pos + 5
  local n = tonumber(ARGV[templates_at + 2 * n_templates])
  local events_at = templates_at + 2 * n_templates + 1
  pos = events_at + 2 * n
  local meta = skey(id, 'meta')
  local v = redis.call('HMGET', meta, 'worker', 'state', 'seq', 'nt')
  if not v[1] or v[1] ~= worker then return 'lost' end
  local last = tonumber(v[3])
  if v[2] ~= 'live' then
    -- A retry of the final write that went through is fine; anything else is not ours.
    if reason ~= '' and last >= first + n - 1 then return 'ok' end
    return 'lost'
  end
  if first > last + 1 then return 'gap' end
  local size = 0
  local known = tonumber(v[4] or '0')
  for i = 0, n_templates - 1 do
    local index = first_template + i
    if index >= known then
      redis.call('HSET', meta, 't' .. index, ARGV[templates_at + 2 * i])
      size = size + tonumber(ARGV[templates_at + 2 * i + 1])
      known = index + 1
    end
  end
  if n_templates > 0 then redis.call('HSET', meta, 'nt', known) end
  local events = skey(id, 'events')
  for i = last - first + 1, n - 1 do
    local seq = first + i
    local tag, data = ARGV[events_at + 2 * i], ARGV[events_at + 2 * i + 1]
    if string.byte(tag, 1) == 61 then -- '=': a whole event
      size = size + add_event(events, seq, string.sub(tag, 2), data)
    else
      redis.call('XADD', events, seq .. '-0', 't', tag, 'd', data)
      size = size + #data
    end
    last = seq
  end
  add_bytes(id, size)
  if reason ~= '' then
    finish(id, last, reason, ttl_ms)
  else
    redis.call('HSET', meta, 'seq', last)
    set_deadline(id, now_ms() + live_ms)
  end
  return 'ok'
end

while pos <= #ARGV do
  local id = ARGV[pos]
  local status = append_one()
  if status ~= 'ok' then
    out[#out + 1] = id
    out[#out + 1] = status
  end
end

-- The byte bound, held while streams grow: evict finished streams, oldest
-- first; if that is not enough, end the newest live stream (its worker is
-- told; one such stream at a time).
if total_bytes() > max_bytes then
  while total_bytes() > max_bytes do
    local oldest = redis.call('ZRANGE', P .. 'finished', 0, 0)
    if #oldest == 0 then break end
    drop(oldest[1])
  end
  if total_bytes() > max_bytes then
    for _, id in ipairs(redis.call('ZREVRANGE', P .. 'started', 0, 0)) do
      local meta = skey(id, 'meta')
      local s = redis.call('HMGET', meta, 'state', 'worker', 'cancel')
      if s[1] == 'live' and (not s[3] or s[3] == '') then
        redis.call('HSET', meta, 'cancel', 'full')
        redis.call('PUBLISH', P .. 'worker:' .. s[2], 'full ' .. id)
      end
    end
  end
end
return out

-- Append the events of several streams of one worker: one call per writer flush.
-- ARGV: P, worker, ttl_ms, max_bytes, n_streams, numbers, data,
--       then the new templates' JSON and new event names, stream by stream.
-- numbers: little-endian int32s, stream by stream:
--   id length, first_seq, end (0 = more to come, else an index into REASONS),
--   n_templates, first_template, n_names, first_name, n_events,
--   template bytes * n_templates, then (tag, length) * n_events.
-- data: stream by stream, its id, then its events' bytes end to end.
-- A tag >= 0 is a template index: the event is a fragment, its data the part
-- (entry fields t and d); a tag < 0 a whole event named name number -tag - 1
-- (fields e, when named, and d). Templates and names are kept in the meta
-- hash (t{i}, n{i}; counts nt and nn), so any worker can rebuild any event.
-- Writes are idempotent: seqs, templates and names already stored are
-- skipped, so a retried call after a lost reply changes nothing.
-- -> {id, status} for every stream whose status is not 'ok' ('lost', 'gap').
local REASONS = {'done', 'cancelled', 'abandoned', 'error', 'shutdown'}
local worker, ttl_ms = ARGV[2], tonumber(ARGV[3])
local max_bytes, n_streams = tonumber(ARGV[4]), tonumber(ARGV[5])
local numbers = {}
do
  local packed = ARGV[6]
  local pos, count = 1, #packed / 4
  while #numbers < count do
    local chunk = {struct.unpack(string.rep('<i4', math.min(200, count - #numbers)), packed, pos)}
    pos = table.remove(chunk)
    for _, value in ipairs(chunk) do numbers[#numbers + 1] = value end
  end
end
local blob = ARGV[7]
local at = 1 -- next number
local offset = 1 -- next data byte
local text = 8 -- next template or name
local added = 0 -- bytes, all streams together
local out = {}

local function append_one()
  local id = string.sub(blob, offset, offset + numbers[at] - 1)
  offset = offset + numbers[at]
  at = at + 1
  local first, ending = numbers[at], numbers[at + 1]
  local n_templates, first_template = numbers[at + 2], numbers[at + 3]
  local n_names, first_name, n = numbers[at + 4], numbers[at + 5], numbers[at + 6]
  local sizes_at = at + 7
  local events_at = sizes_at + n_templates
  local texts_at = text
  at = events_at + 2 * n
  text = text + n_templates + n_names
  local data_at = offset
  for i = 0, n - 1 do offset = offset + numbers[events_at + 2 * i + 1] end
  local reason = REASONS[ending] or ''
  local m = skey(id, 'meta')
  local v = redis.call('HMGET', m, 'worker', 'state', 'seq', 'nt', 'nn')
  if not v[1] or v[1] ~= worker then return id, 'lost' end
  local last = tonumber(v[3])
  if v[2] ~= 'live' then
    -- A retry of the final write that went through is fine; anything else is not ours.
    if reason ~= '' and last >= first + n - 1 then return id, 'ok' end
    return id, 'lost'
  end
  if first > last + 1 then return id, 'gap' end
  local size = 0
  if n_templates > 0 then
    local known = tonumber(v[4] or '0')
    for i = 0, n_templates - 1 do
      if first_template + i >= known then
        redis.call('HSET', m, 't' .. (first_template + i), ARGV[texts_at + i])
        size = size + numbers[sizes_at + i]
        known = first_template + i + 1
      end
    end
    redis.call('HSET', m, 'nt', known)
  end
  local names = {}
  if n_names > 0 then
    local known = tonumber(v[5] or '0')
    for i = 0, n_names - 1 do
      names[first_name + i] = ARGV[texts_at + n_templates + i]
      if first_name + i >= known then
        redis.call('HSET', m, 'n' .. (first_name + i), names[first_name + i])
        known = first_name + i + 1
      end
    end
    redis.call('HSET', m, 'nn', known)
  end
  local events = skey(id, 'events')
  for i = 0, n - 1 do
    local seq = first + i
    local tag, length = numbers[events_at + 2 * i], numbers[events_at + 2 * i + 1]
    if seq > last then
      local data = string.sub(blob, data_at, data_at + length - 1)
      if tag >= 0 then
        redis.call('XADD', events, seq .. '-0', 't', tag, 'd', data)
        size = size + length
      else
        local index = -tag - 1
        if not names[index] then names[index] = redis.call('HGET', m, 'n' .. index) end
        size = size + add_event(events, seq, names[index], data)
      end
      last = seq
    end
    data_at = data_at + length
  end
  if tonumber(v[3]) == 0 and last > 0 then
    -- The events key was just created: it takes the stream's deadline.
    local ttl = redis.call('PTTL', m)
    if ttl > 0 then redis.call('PEXPIRE', events, ttl) end
  end
  if size > 0 then
    redis.call('HINCRBY', P .. 'sizes', id, size)
    added = added + size
  end
  if reason ~= '' then
    finish(id, last, reason, ttl_ms)
  else
    -- The deadline is the heartbeat's to renew (every second, far inside it).
    redis.call('HSET', m, 'seq', last)
  end
  return id, 'ok'
end

for _ = 1, n_streams do
  local id, status = append_one()
  if status ~= 'ok' then
    out[#out + 1] = id
    out[#out + 1] = status
  end
end

if added > 0 then redis.call('INCRBY', P .. 'bytes', added) end

-- The byte bound, held while streams grow: evict finished streams, oldest
-- first; if that is not enough, end the newest live streams, as many as it
-- takes for what they hold to cover the excess (their workers are told; they
-- are evicted in turn once ended). P:ending holds what each held when picked.
if total_bytes() > max_bytes then
  while total_bytes() > max_bytes do
    local oldest = redis.call('ZRANGE', P .. 'finished', 0, 0)
    if #oldest == 0 then break end
    drop(oldest[1])
  end
  local pending = tonumber(redis.call('GET', P .. 'ending_bytes') or '0')
  local from = 0
  while total_bytes() - pending > max_bytes do
    local newest = redis.call('ZREVRANGE', P .. 'started', from, from + 49)
    if #newest == 0 then break end
    from = from + 50
    for _, id in ipairs(newest) do
      if total_bytes() - pending <= max_bytes then break end
      local m = skey(id, 'meta')
      local s = redis.call('HMGET', m, 'state', 'worker', 'cancel')
      if s[1] == 'live' and (not s[3] or s[3] == '') then
        local held = tonumber(redis.call('HGET', P .. 'sizes', id) or '0')
        redis.call('HSET', m, 'cancel', 'full')
        redis.call('PUBLISH', P .. 'worker:' .. s[2], 'full ' .. id)
        redis.call('HSET', P .. 'ending', id, held)
        redis.call('INCRBY', P .. 'ending_bytes', held)
        pending = pending + held
      end
    end
  end
end
return out

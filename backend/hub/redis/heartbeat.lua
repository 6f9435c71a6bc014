-- A worker's heartbeat: renew its liveness key, the deadlines of the streams
-- it runs and the leases of its readers of other workers' streams; prune.
-- ARGV: P, worker, worker_lease_ms, live_ms, sub_lease_ms,
--       n_owned, owned ids..., n_alone, ids of those with no reader on their worker...,
--       then (stream id, subscriber id) pairs of this worker's readers elsewhere.
-- -> {stored streams, stored bytes, then (id, what, attached) for each owned
--    stream that needs its worker: 'lost' (not ours any more), 'cancelled' or
--    'full' (a stop request), 'unread' (alone and no reader elsewhere either;
--    attached = 1 if a reader elsewhere ever attached)}
local worker = ARGV[2]
local now = now_ms()
redis.call('SET', P .. 'worker:' .. worker, 1, 'PX', tonumber(ARGV[3]))
prune(now)
local live_ms, sub_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
local out = {redis.call('ZCARD', P .. 'streams'), total_bytes()}
local n = tonumber(ARGV[6])
for i = 7, 6 + n do
  local id = ARGV[i]
  local meta = skey(id, 'meta')
  local v = redis.call('HMGET', meta, 'worker', 'state', 'cancel')
  if not v[1] or v[1] ~= worker or v[2] ~= 'live' then
    out[#out + 1] = id; out[#out + 1] = 'lost'; out[#out + 1] = 0
  else
    redis.call('HDEL', meta, 'suspect')
    set_deadline(id, now + live_ms)
    if v[3] and v[3] ~= '' then
      out[#out + 1] = id; out[#out + 1] = v[3]; out[#out + 1] = 0
    end
  end
end
local alone = tonumber(ARGV[7 + n])
for i = 8 + n, 7 + n + alone do
  local id = ARGV[i]
  if live_subscribers(id, now) == 0 then
    local v = redis.call('HMGET', skey(id, 'meta'), 'state', 'attached')
    if v[1] == 'live' then
      out[#out + 1] = id; out[#out + 1] = 'unread'; out[#out + 1] = tonumber(v[2] or '0')
    end
  end
end
for i = 8 + n + alone, #ARGV - 1, 2 do
  local meta = skey(ARGV[i], 'meta')
  if redis.call('EXISTS', meta) == 1 then
    local subs = skey(ARGV[i], 'subs')
    redis.call('ZADD', subs, now + sub_ms, ARGV[i + 1])
    local ttl = redis.call('PTTL', meta)
    if ttl > 0 then redis.call('PEXPIRE', subs, ttl) end
  end
end
return out

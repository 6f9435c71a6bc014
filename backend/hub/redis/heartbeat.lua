-- A worker's heartbeat: renew its liveness key, the deadlines of the streams
-- it runs and the leases of its readers of other workers' streams; prune.
-- ARGV: P, worker, worker_lease_ms, live_ms, sub_lease_ms, n_owned, owned ids...,
--       then (stream id, subscriber id) pairs of this worker's remote readers.
-- -> {stored streams, stored bytes}, then for each owned stream:
--    {status, remote subscribers, attached remotely, stop request}
local worker = ARGV[2]
local now = now_ms()
redis.call('SET', P .. 'worker:' .. worker, 1, 'PX', tonumber(ARGV[3]))
prune(now)
local live_ms, sub_ms, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {{redis.call('ZCARD', P .. 'streams'), total_bytes()}}
for i = 7, 6 + n do
  local id = ARGV[i]
  local meta = skey(id, 'meta')
  local v = redis.call('HMGET', meta, 'worker', 'state', 'attached', 'cancel')
  if not v[1] or v[1] ~= worker or v[2] ~= 'live' then
    out[#out + 1] = {'lost', 0, 0, ''}
  else
    redis.call('HDEL', meta, 'suspect')
    set_deadline(id, now + live_ms)
    out[#out + 1] = {'live', live_subscribers(id, now), tonumber(v[3] or '0'), v[4] or ''}
  end
end
for i = 7 + n, #ARGV - 1, 2 do
  local meta = skey(ARGV[i], 'meta')
  if redis.call('EXISTS', meta) == 1 then
    local subs = skey(ARGV[i], 'subs')
    redis.call('ZADD', subs, now + sub_ms, ARGV[i + 1])
    local ttl = redis.call('PTTL', meta)
    if ttl > 0 then redis.call('PEXPIRE', subs, ttl) end
  end
end
return out

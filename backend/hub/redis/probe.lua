-- How is a stream? Finishes a live stream whose worker is gone with its stored
-- orphan events. "Gone" = no liveness key, seen twice at least a lease apart:
-- a worker whose key merely expired during a Redis outage renews it (and
-- clears the suspicion) with its next heartbeat, within a second of Redis
-- returning.
-- ARGV: P, id, ttl_ms, lease_ms  -> 'missing' | 'done' | 'live' | 'orphaned'
local id = ARGV[2]
local meta = skey(id, 'meta')
local v = redis.call('HMGET', meta, 'state', 'worker', 'seq', 'orphan', 'suspect')
if not v[1] then return 'missing' end
if v[1] ~= 'live' then return 'done' end
if redis.call('EXISTS', P .. 'worker:' .. v[2]) == 1 then return 'live' end
local now = now_ms()
if not v[5] then
  redis.call('HSET', meta, 'suspect', now)
  return 'live'
end
if now - tonumber(v[5]) < tonumber(ARGV[4]) then return 'live' end
local last = tonumber(v[3])
local orphan = cjson.decode(v[4])
local events = skey(id, 'events')
local size = 0
for i = 1, #orphan, 2 do
  last = last + 1
  size = size + add_event(events, last, orphan[i], orphan[i + 1])
end
add_bytes(id, size)
finish(id, last, 'error', tonumber(ARGV[3]))
return 'orphaned'

-- Register a new live stream, evicting finished streams (oldest first) to make room.
-- ARGV: P, id, owner, worker, max_streams, max_bytes, live_ms, orphan_json
-- -> {'ok'} | {'exists'} | {'full', streams, bytes}
local id, owner, worker = ARGV[2], ARGV[3], ARGV[4]
local max_streams, max_bytes = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
prune(now)
local meta = skey(id, 'meta')
if redis.call('EXISTS', meta) == 1 then
  -- The same worker retrying an admit that went through: not a duplicate.
  if redis.call('HGET', meta, 'worker') == worker then return {'ok'} end
  return {'exists'}
end
while redis.call('ZCARD', P .. 'streams') >= max_streams or total_bytes() >= max_bytes do
  local oldest = redis.call('ZRANGE', P .. 'finished', 0, 0)
  if #oldest == 0 then
    return {'full', redis.call('ZCARD', P .. 'streams'), total_bytes()}
  end
  drop(oldest[1])
end
redis.call('HSET', meta, 'owner', owner, 'worker', worker, 'state', 'live', 'seq', 0,
  'attached', 0, 'nt', 0, 'orphan', ARGV[8])
redis.call('ZADD', P .. 'started', now, id)
set_deadline(id, now + tonumber(ARGV[7]))
return {'ok'}

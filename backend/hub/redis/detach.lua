-- A reader on another worker left. When none is left, tell the stream's worker.
-- ARGV: P, id, subscriber  -> subscribers left
local id = ARGV[2]
redis.call('ZREM', skey(id, 'subs'), ARGV[3])
local left = live_subscribers(id, now_ms())
if left == 0 then
  local v = redis.call('HMGET', skey(id, 'meta'), 'state', 'worker')
  if v[1] == 'live' then redis.call('PUBLISH', P .. 'worker:' .. v[2], 'detached ' .. id) end
end
return left

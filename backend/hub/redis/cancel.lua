-- Ask a stream's worker to stop it (the first reason given wins).
-- ARGV: P, id, owner  -> nil | {state, seq}
local id = ARGV[2]
local meta = skey(id, 'meta')
local v = redis.call('HMGET', meta, 'owner', 'state', 'seq', 'worker', 'cancel')
if not v[1] or v[1] ~= ARGV[3] then return false end
if v[2] == 'live' then
  if not v[5] or v[5] == '' then redis.call('HSET', meta, 'cancel', 'cancelled') end
  redis.call('PUBLISH', P .. 'worker:' .. v[4], 'cancel ' .. id)
end
return {v[2], v[3]}

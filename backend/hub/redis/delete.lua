-- Forget a stream. ARGV: P, id, owner  -> 1 | 0 (unknown or foreign)
local id = ARGV[2]
local owner = redis.call('HGET', skey(id, 'meta'), 'owner')
if not owner or owner ~= ARGV[3] then return 0 end
drop(id)
return 1

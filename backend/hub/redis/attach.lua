-- A reader on another worker than the stream's: check the owner, take a lease.
-- ARGV: P, id, owner, subscriber, lease_ms
-- -> nil | {state, seq, template_json...}
local id = ARGV[2]
local meta = skey(id, 'meta')
local v = redis.call('HMGET', meta, 'owner', 'state', 'seq', 'nt')
if not v[1] or v[1] ~= ARGV[3] then return false end
local subs = skey(id, 'subs')
redis.call('ZADD', subs, now_ms() + tonumber(ARGV[5]), ARGV[4])
redis.call('HSET', meta, 'attached', 1)
local ttl = redis.call('PTTL', meta)
if ttl > 0 then redis.call('PEXPIRE', subs, ttl) end
local out = {v[2], v[3]}
for i = 0, tonumber(v[4] or '0') - 1 do
  out[#out + 1] = redis.call('HGET', meta, 't' .. i)
end
return out

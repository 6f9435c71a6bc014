-- A stream's templates from index ARGV[3] on (they are append-only).
-- ARGV: P, id, from  -> {template_json...}
local meta = skey(ARGV[2], 'meta')
local out = {}
for i = tonumber(ARGV[3]), tonumber(redis.call('HGET', meta, 'nt') or '0') - 1 do
  out[#out + 1] = redis.call('HGET', meta, 't' .. i)
end
return out

-- ARGV: prefix, ttl_ms, then subject, member pairs. XX: never re-add a slot that was
-- released meanwhile (the release may reach Redis before this renewal does).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  local key = ARGV[1] .. 'slots:' .. ARGV[i]
  redis.call('ZADD', key, 'XX', now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return 1

-- ARGV: prefix, subject, member, limit, ttl_ms -> {1 | 0, held}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local key = ARGV[1] .. 'slots:' .. ARGV[2]
local ttl = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local held = redis.call('ZCARD', key)
if held >= tonumber(ARGV[4]) then return {0, held} end
redis.call('ZADD', key, now + ttl, ARGV[3])
redis.call('PEXPIRE', key, ttl)
return {1, held + 1}

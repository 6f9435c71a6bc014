-- Interrupt a worker's shared XREAD (it follows this stream, so it returns).
-- ARGV: P, worker, ttl_ms
local key = P .. 'wake:' .. ARGV[2]
redis.call('XADD', key, 'MAXLEN', 1, '*', 'w', 1)
redis.call('PEXPIRE', key, tonumber(ARGV[3]))

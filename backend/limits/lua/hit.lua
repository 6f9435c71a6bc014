-- ARGV: prefix, subject, window_s -> {count, ms left in the window}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window_ms = tonumber(ARGV[3]) * 1000
local window = math.floor(now / window_ms)
local key = ARGV[1] .. 'rpm:' .. ARGV[2] .. ':' .. window
local count = redis.call('INCR', key)
if count == 1 then redis.call('PEXPIRE', key, 2 * window_ms) end
return {count, (window + 1) * window_ms - now}

-- Readers of a stream on other workers than its own.
-- ARGV: P, id  -> subscribers
return live_subscribers(ARGV[2], now_ms())

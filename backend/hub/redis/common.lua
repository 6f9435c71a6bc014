-- Shared by every hub script (prepended to each). ARGV[1] is the key prefix P.
-- Key names are built from P, so the hub needs one Redis (or a primary), not a Cluster.
local P = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function skey(id, part) return P .. 'stream:' .. id .. ':' .. part end

-- Every key of a stream carries the deadline that is its score in P:streams.
local function set_deadline(id, deadline)
  redis.call('PEXPIREAT', skey(id, 'meta'), deadline)
  redis.call('PEXPIREAT', skey(id, 'events'), deadline)
  redis.call('PEXPIREAT', skey(id, 'subs'), deadline)
  redis.call('ZADD', P .. 'streams', deadline, id)
end

local function add_bytes(id, size)
  if size > 0 then
    redis.call('HINCRBY', P .. 'sizes', id, size)
    redis.call('INCRBY', P .. 'bytes', size)
  end
end

local function total_bytes() return tonumber(redis.call('GET', P .. 'bytes') or '0') end

-- A stream the byte bound is ending no longer counts as being ended.
local function ended(id)
  local held = redis.call('HGET', P .. 'ending', id)
  if held then
    redis.call('HDEL', P .. 'ending', id)
    redis.call('DECRBY', P .. 'ending_bytes', held)
  end
end

local function drop(id)
  ended(id)
  local size = tonumber(redis.call('HGET', P .. 'sizes', id) or '0')
  if size > 0 then redis.call('DECRBY', P .. 'bytes', size) end
  redis.call('HDEL', P .. 'sizes', id)
  redis.call('ZREM', P .. 'streams', id)
  redis.call('ZREM', P .. 'finished', id)
  redis.call('ZREM', P .. 'started', id)
  redis.call('DEL', skey(id, 'meta'), skey(id, 'events'), skey(id, 'subs'))
end

-- Forget streams past their deadline (their keys have expired already).
local function prune(now)
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', P .. 'streams', '-inf', now, 'LIMIT', 0, 100)) do
    drop(old)
  end
end

local function live_subscribers(id, now)
  local subs = skey(id, 'subs')
  redis.call('ZREMRANGEBYSCORE', subs, '-inf', now)
  return redis.call('ZCARD', subs)
end

-- One whole event as entry seq-0: field e (its SSE event name, when it has
-- one) and d (its payload). Returns the bytes it stores.
local function add_event(events, seq, name, data)
  if name == '' then
    redis.call('XADD', events, seq .. '-0', 'd', data)
  else
    redis.call('XADD', events, seq .. '-0', 'e', name, 'd', data)
  end
  return #name + #data
end

-- The stream has its last event (seq last): the end marker last-1, state done.
local function finish(id, last, reason, ttl_ms)
  ended(id)
  local now = now_ms()
  redis.call('XADD', skey(id, 'events'), last .. '-1', 'end', reason)
  redis.call('HSET', skey(id, 'meta'), 'seq', last, 'state', 'done')
  redis.call('ZADD', P .. 'finished', now, id)
  redis.call('ZREM', P .. 'started', id)
  set_deadline(id, now + ttl_ms)
end

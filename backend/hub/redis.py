"""The Redis hub: every worker (and replica) can resume or cancel every stream.

Same semantics as the in-process hub (``memory.py`` is the reference), with
the state in Redis so the process that runs a generation and the processes
that serve its readers need not be the same.

Keys (``P`` = key prefix, default ``ssechat``; ``{id}`` = stream id)
-----------------------------------------------------------------------
- ``P:stream:{id}:events``: a Redis Stream. Event seq N is the entry with the
  explicit id ``N-0``, field ``d`` (the payload) and, for a named event,
  field ``e`` (the SSE event name); after the last event N
  the entry ``N-1`` with field ``end`` (the end reason) marks the end. Explicit
  ids make Redis itself refuse a duplicate or out-of-order seq, make "replay
  everything after Last-Event-ID" a plain ``XREAD … {after}-0``, and make a
  retried write idempotent (the append script skips what is already there).
- ``P:stream:{id}:meta``: hash ``owner`` (the API-key tag, "" when open),
  ``worker`` (id of the owning worker), ``state`` (live | done), ``seq``
  (last written seq), ``attached`` (1 once anyone subscribed), ``cancel``
  (a cancel request), ``orphan`` (JSON list of the payloads that end the
  stream if its worker dies: the Generation's closing events for "error").
- ``P:stream:{id}:subs``: sorted set, subscriber id → lease deadline (ms).
  Each worker renews the leases of its open subscriptions every second, so a
  crashed worker's readers stop counting within ``_LEASE_S``.
- ``P:streams``: sorted set, stream id → expiry deadline (ms), the index the
  bounds and the pruning use; ``P:finished``: stream id → finish time (ms),
  the eviction order; ``P:sizes`` (hash id → bytes) and ``P:bytes`` (total).
- ``P:worker:{wid}``: a worker's liveness key (``PX`` lease, renewed every
  second), and, as a pub/sub channel of the same name, that worker's control
  channel: ``cancel {id}`` and ``detached {id}`` (the last reader anywhere left).

Every key of a stream carries the same ``PEXPIREAT`` as its score in
``P:streams``: while live, ``max(stream_ttl_s, _LIVE_LEASE_S)`` from the last
write or heartbeat; once finished, ``stream_ttl_s`` from the end. The four
index keys have no TTL: every start and heartbeat prunes them by deadline
(and takes the expired stream's bytes off the total). Every
multi-key change is one Lua script (atomic; times from the server's ``TIME``,
so workers' clocks do not matter). The scripts build key names from the
prefix, so this hub needs a single Redis (or a primary), not Redis Cluster.

Signals
-------
- Cancel from any worker: the ``cancel`` script sets ``meta.cancel`` and
  publishes ``cancel {id}`` to the owner's channel; the owner cancels the
  generation task on receipt (about a millisecond). A message lost while the
  owner's pub/sub connection was down is caught by its next heartbeat, which
  reads ``meta.cancel``.
- Grace period: detaching removes the reader's lease; when none is left the
  script publishes ``detached {id}`` to the owner, which re-counts after
  ``resume_grace_s`` (at once for 0) and cancels (reason ``abandoned``) if
  nobody re-attached. The heartbeat also counts, so a reader whose worker
  died without detaching is noticed.
- A dead owner (its liveness key gone, and still gone a lease later: a live
  worker renews it within a second) cannot finish its streams: a reader that
  sits idle, or a canceller, appends the stored ``orphan`` payloads and the
  end marker, so every reader still ends with an error event and ``[DONE]``.

Connections per worker: one pub/sub, a pool for commands, and one per reader
parked in ``XREAD BLOCK`` (its own pool, so readers never starve writers).

Redis outages
-------------
Request paths (start, subscribe, cancel, a reader's ``XREAD``) retry
connection errors for ``_RETRY_S`` and then raise ``HubUnavailable`` (503
before the response starts; mid-stream the response turns it into an error
event and ``[DONE]``). The producer side never blocks the engine on Redis:
events queue in process memory and one writer task per stream flushes them
in batches, retrying with backoff. If Redis comes back the queue is written
in order (no loss, no duplicate: writes are idempotent), so a client that
resumes gets everything. An outage is treated like every reader leaving:
after ``max(resume_grace_s, _RETRY_S)`` without Redis the generation is
stopped (reason ``error``), and its closing events are still written if Redis
returns before the stream's keys would have expired; after that the writer
gives up. If Redis came back empty (restart without persistence) the stream
is gone: the generation is stopped and resuming answers 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from backend.config import Settings
from backend.hub.base import (
    EndReason,
    Event,
    Generation,
    HubError,
    HubFull,
    HubUnavailable,
    StreamEvent,
    StreamNotFound,
    expand,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

# How long a request (start, subscribe, cancel, a reader's next read) rides
# out connection errors before it answers "unavailable".
_RETRY_S = 2.0
_BACKOFF_MIN_S = 0.05
_BACKOFF_MAX_S = 1.0
# Worker and reader leases, renewed every _HEARTBEAT_S.
_HEARTBEAT_S = 1.0
_LEASE_S = 5.0
# A live stream's keys outlive its last sign of life by at least this much.
_LIVE_LEASE_S = 30.0
# Socket timeout for ordinary commands (a hung Redis, not a slow one).
_COMMAND_TIMEOUT_S = 5.0
_CONNECT_TIMEOUT_S = 2.0
# Events per append script call, and per XREAD.
_WRITE_BATCH = 256
_READ_COUNT = 1024
# How long ``cancel`` waits for the stream's end, and ``aclose`` for the last writes.
_CANCEL_WAIT_S = 3.0
_SHUTDOWN_FLUSH_S = 3.0
_UNAVAILABLE = "The stream store (Redis) is unavailable; retry shortly."
_ORPHAN_MESSAGE = "the server process running this stream stopped"

# -- Lua ------------------------------------------------------------------------------------
_LUA_COMMON = """
local P = ARGV[1]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function skey(id, part) return P .. 'stream:' .. id .. ':' .. part end
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
local function drop(id)
  local size = tonumber(redis.call('HGET', P .. 'sizes', id) or '0')
  if size > 0 then redis.call('DECRBY', P .. 'bytes', size) end
  redis.call('HDEL', P .. 'sizes', id)
  redis.call('ZREM', P .. 'streams', id)
  redis.call('ZREM', P .. 'finished', id)
  redis.call('DEL', skey(id, 'meta'), skey(id, 'events'), skey(id, 'subs'))
end
-- Forget streams past their deadline (their keys have expired already).
local function prune(now)
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', P .. 'streams', '-inf', now, 'LIMIT', 0, 100)) do
    drop(old)
  end
end
local function total_bytes() return tonumber(redis.call('GET', P .. 'bytes') or '0') end
local function live_subscribers(id, now)
  local subs = skey(id, 'subs')
  redis.call('ZREMRANGEBYSCORE', subs, '-inf', now)
  return redis.call('ZCARD', subs)
end
-- Append events (a flat list: name, payload, name, payload …; name '' = unnamed)
-- as seqs last+1.. and, if reason ~= '', the end marker; mark done.
local function append(id, last, payloads, reason, ttl_ms, live_ms)
  local events = skey(id, 'events')
  local size = 0
  for i = 1, #payloads, 2 do
    last = last + 1
    local name, data = payloads[i], payloads[i + 1]
    if name == '' then
      redis.call('XADD', events, last .. '-0', 'd', data)
    else
      redis.call('XADD', events, last .. '-0', 'e', name, 'd', data)
    end
    size = size + #name + #data
  end
  add_bytes(id, size)
  local now = now_ms()
  if reason ~= '' then
    redis.call('XADD', events, last .. '-1', 'end', reason)
    redis.call('HSET', skey(id, 'meta'), 'seq', last, 'state', 'done')
    redis.call('ZADD', P .. 'finished', now, id)
    set_deadline(id, now + ttl_ms)
  else
    redis.call('HSET', skey(id, 'meta'), 'seq', last)
    set_deadline(id, now + live_ms)
  end
  return last
end
"""

# ARGV: P, id, owner, worker, max_streams, max_bytes, live_ms, orphan_json
_LUA_ADMIT = """
local id, owner, worker = ARGV[2], ARGV[3], ARGV[4]
local max_streams, max_bytes = tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
prune(now)
local meta = skey(id, 'meta')
if redis.call('EXISTS', meta) == 1 then
  -- The same worker retrying an admit that went through: not a duplicate.
  if redis.call('HGET', meta, 'worker') == worker then return {'ok'} end
  return {'exists'}
end
while redis.call('ZCARD', P .. 'streams') >= max_streams or total_bytes() >= max_bytes do
  local oldest = redis.call('ZRANGE', P .. 'finished', 0, 0)
  if #oldest == 0 then
    return {'full', redis.call('ZCARD', P .. 'streams'), total_bytes()}
  end
  drop(oldest[1])
end
redis.call('HSET', meta, 'owner', owner, 'worker', worker, 'state', 'live', 'seq', 0,
  'attached', 0, 'orphan', ARGV[8])
set_deadline(id, now + tonumber(ARGV[7]))
return {'ok'}
"""

# ARGV: P, id, worker, first_seq, end_reason ('' = more to come), ttl_ms, live_ms,
#       then (event name, payload) pairs
_LUA_APPEND = """
local id, worker, first, reason = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local n = (#ARGV - 7) / 2
local v = redis.call('HMGET', skey(id, 'meta'), 'worker', 'state', 'seq')
if not v[1] or v[1] ~= worker then return 'lost' end
local last = tonumber(v[3])
if v[2] ~= 'live' then
  -- A retry of the final write that went through is fine; anything else is not ours.
  if reason ~= '' and last >= first + n - 1 then return 'ok' end
  return 'lost'
end
if first > last + 1 then return 'gap' end
local payloads = {}
for i = last - first + 2, n do
  payloads[#payloads + 1] = ARGV[6 + 2 * i]
  payloads[#payloads + 1] = ARGV[7 + 2 * i]
end
append(id, last, payloads, reason, tonumber(ARGV[6]), tonumber(ARGV[7]))
return 'ok'
"""

# ARGV: P, id, owner, subscriber, lease_ms  -> nil | {state, seq}
_LUA_ATTACH = """
local id = ARGV[2]
local meta = skey(id, 'meta')
local v = redis.call('HMGET', meta, 'owner', 'state', 'seq')
if not v[1] or v[1] ~= ARGV[3] then return false end
local subs = skey(id, 'subs')
redis.call('ZADD', subs, now_ms() + tonumber(ARGV[5]), ARGV[4])
redis.call('HSET', meta, 'attached', 1)
local ttl = redis.call('PTTL', meta)
if ttl > 0 then redis.call('PEXPIRE', subs, ttl) end
return {v[2], v[3]}
"""

# ARGV: P, id, subscriber  -> subscribers left
_LUA_DETACH = """
local id = ARGV[2]
redis.call('ZREM', skey(id, 'subs'), ARGV[3])
local left = live_subscribers(id, now_ms())
if left == 0 then
  local v = redis.call('HMGET', skey(id, 'meta'), 'state', 'worker')
  if v[1] == 'live' then redis.call('PUBLISH', P .. 'worker:' .. v[2], 'detached ' .. id) end
end
return left
"""

# ARGV: P, id  -> subscribers left
_LUA_COUNT = """
return live_subscribers(ARGV[2], now_ms())
"""

# ARGV: P, id, owner  -> nil | {state, seq}
_LUA_CANCEL = """
local id = ARGV[2]
local meta = skey(id, 'meta')
local v = redis.call('HMGET', meta, 'owner', 'state', 'seq', 'worker')
if not v[1] or v[1] ~= ARGV[3] then return false end
if v[2] == 'live' then
  redis.call('HSET', meta, 'cancel', 'cancelled')
  redis.call('PUBLISH', P .. 'worker:' .. v[4], 'cancel ' .. id)
end
return {v[2], v[3]}
"""

# ARGV: P, id, owner  -> 1 | 0 (unknown or foreign)
_LUA_DELETE = """
local id = ARGV[2]
local owner = redis.call('HGET', skey(id, 'meta'), 'owner')
if not owner or owner ~= ARGV[3] then return 0 end
drop(id)
return 1
"""

# ARGV: P, id, ttl_ms, lease_ms  -> 'missing' | 'done' | 'live' | 'orphaned'
# Finishes a live stream whose worker is gone with its stored orphan payloads.
# "Gone" = no liveness key, seen twice at least a lease apart: a worker whose
# key merely expired during a Redis outage renews it (and clears the
# suspicion) with its next heartbeat, within a second of Redis returning.
_LUA_PROBE = """
local id = ARGV[2]
local meta = skey(id, 'meta')
local v = redis.call('HMGET', meta, 'state', 'worker', 'seq', 'orphan', 'suspect')
if not v[1] then return 'missing' end
if v[1] ~= 'live' then return 'done' end
if redis.call('EXISTS', P .. 'worker:' .. v[2]) == 1 then return 'live' end
local now = now_ms()
if not v[5] then
  redis.call('HSET', meta, 'suspect', now)
  return 'live'
end
if now - tonumber(v[5]) < tonumber(ARGV[4]) then return 'live' end
append(id, tonumber(v[3]), cjson.decode(v[4]), 'error', tonumber(ARGV[3]), 0)
return 'orphaned'
"""

# ARGV: P, worker, worker_lease_ms, live_ms, sub_lease_ms, n_owned, owned ids...,
#       then (stream id, subscriber id) pairs of this worker's open subscriptions.
# -> {stored streams, stored bytes}, then for each owned stream:
#    {status, subscribers, attached, cancel}
_LUA_HEARTBEAT = """
local worker = ARGV[2]
local now = now_ms()
redis.call('SET', P .. 'worker:' .. worker, 1, 'PX', tonumber(ARGV[3]))
prune(now)
local live_ms, sub_ms, n = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local out = {{redis.call('ZCARD', P .. 'streams'), total_bytes()}}
for i = 7, 6 + n do
  local id = ARGV[i]
  local meta = skey(id, 'meta')
  local v = redis.call('HMGET', meta, 'worker', 'state', 'attached', 'cancel')
  if not v[1] or v[1] ~= worker or v[2] ~= 'live' then
    out[#out + 1] = {'lost', 0, 0, ''}
  else
    redis.call('HDEL', meta, 'suspect')
    set_deadline(id, now + live_ms)
    out[#out + 1] = {'live', live_subscribers(id, now), tonumber(v[3] or '0'), v[4] or ''}
  end
end
for i = 7 + n, #ARGV - 1, 2 do
  local meta = skey(ARGV[i], 'meta')
  if redis.call('EXISTS', meta) == 1 then
    local subs = skey(ARGV[i], 'subs')
    redis.call('ZADD', subs, now + sub_ms, ARGV[i + 1])
    local ttl = redis.call('PTTL', meta)
    if ttl > 0 then redis.call('PEXPIRE', subs, ttl) end
  end
end
return out
"""


def _transient(error: BaseException) -> bool:
    # BusyLoadingError (Redis still loading its data) is a ConnectionError.
    return isinstance(error, RedisConnectionError | RedisTimeoutError)


def _redact(url: str) -> str:
    """The URL without credentials (user info, and a query that may hold ``password=``)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of a one-stream XREAD reply (RESP2: ``[[key, [(id, fields), ...]]]``)."""
    return cast(list[tuple[str, dict[str, str]]], reply[0][1])


def _not_found(stream_id: str) -> StreamNotFound:
    # A foreign stream looks exactly like a missing one: ids are not an oracle.
    return StreamNotFound(f"No stream {stream_id!r} (unknown, expired, or not yours).")


@dataclass(eq=False)
class _Owned:
    """A generation this worker runs: its events not yet in Redis, and its tasks."""

    stream_id: str
    generation: Generation
    pending: list[Event] = field(default_factory=list)
    written: int = 0  # last seq stored in Redis
    produced_all: bool = False  # the producer ended; ``end_marker`` says how
    end_marker: str = "done"
    end_reason: EndReason | None = None  # why it is being stopped early, once asked
    end_message: str = ""
    expires_at: float = 0.0  # monotonic time past which its keys are surely gone
    background: bool = False  # runs on without readers
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    producer: asyncio.Task[None] | None = None
    writer: asyncio.Task[None] | None = None
    grace: asyncio.TimerHandle | None = None
    checking: bool = False

    def push(self, event: Event) -> None:
        self.pending.append(event)
        self.wake.set()


class RedisSubscription:
    """One reader's cursor over a stream in Redis; iterate for batches, ``aclose`` to detach."""

    def __init__(self, hub: RedisHub, stream_id: str, subscriber: str, cursor: int) -> None:
        self._hub = hub
        self._stream_id = stream_id
        self._subscriber = subscriber
        self._cursor = cursor
        self._closed = False

    def __aiter__(self) -> AsyncIterator[Sequence[StreamEvent]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[Sequence[StreamEvent]]:
        hub = self._hub
        try:
            while True:
                entries = await hub._read(self._stream_id, self._cursor)
                if entries is None:  # keepalive_s without events
                    await hub._probe(self._stream_id)
                    yield ()
                    continue
                batch: list[StreamEvent] = []
                ended = False
                for entry_id, fields in entries:
                    if "end" in fields:
                        ended = True
                        break
                    seq = int(entry_id.partition("-")[0])
                    if seq != self._cursor + 1:  # cannot happen: Redis orders explicit ids
                        raise HubError(f"stream {self._stream_id!r} skipped from {self._cursor}")
                    batch.append(StreamEvent(seq, fields.get("e", ""), fields["d"]))
                    self._cursor = seq
                if batch:
                    yield batch
                if ended:
                    return
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._hub._detach(self._stream_id, self._subscriber)


class RedisHub:
    """Streams in Redis, shared by every worker; generations run on the worker that started them."""

    kind = "redis"

    def __init__(
        self,
        *,
        redis_url: str,
        keepalive_s: float,
        stream_ttl_s: float,
        resume_grace_s: float,
        max_streams: int,
        max_buffered_bytes: int,
        on_end: Callable[[EndReason], None] | None = None,
        key_prefix: str = "ssechat",
    ) -> None:
        self.keepalive_s = keepalive_s
        self._url = redis_url
        self._ttl_ms = max(1, round(stream_ttl_s * 1000))
        self._live_ms = round(max(stream_ttl_s, _LIVE_LEASE_S) * 1000)
        self._grace_s = resume_grace_s
        self._outage_budget_s = max(resume_grace_s, _RETRY_S)
        self._max_streams = max_streams
        self._max_bytes = max_buffered_bytes
        self._on_end = on_end
        self._prefix = key_prefix + ":"
        self.worker_id = uuid.uuid4().hex
        self._block_ms = max(1, round(keepalive_s * 1000))  # BLOCK 0 would mean forever
        common: dict[str, Any] = {
            "decode_responses": True,
            # A lone surrogate from an engine becomes "?", as the SSE encoder would write it.
            "encoding_errors": "replace",
            "protocol": 2,
            "socket_connect_timeout": _CONNECT_TIMEOUT_S,
            # Retries are ours (they need to know what is idempotent and for how long).
            "retry": Retry(NoBackoff(), 0),
        }
        # redis-py's async pools stop at 100 connections by default and then fail
        # every further command ("Too many connections"). Each open reader holds a
        # blocking connection, so size the pools from the stream bound instead.
        pool_size = max_streams + 64
        self._redis: Redis = Redis.from_url(
            redis_url, socket_timeout=_COMMAND_TIMEOUT_S, max_connections=pool_size, **common
        )
        # Readers park in XREAD BLOCK for up to keepalive_s: their own pool, so
        # they never starve the producers' and cancellers' commands.
        self._blocking: Redis = Redis.from_url(
            redis_url,
            socket_timeout=keepalive_s + _COMMAND_TIMEOUT_S,
            max_connections=pool_size,
            **common,
        )
        self._admit = self._redis.register_script(_LUA_COMMON + _LUA_ADMIT)
        self._append = self._redis.register_script(_LUA_COMMON + _LUA_APPEND)
        self._attach = self._redis.register_script(_LUA_COMMON + _LUA_ATTACH)
        self._detach_script = self._redis.register_script(_LUA_COMMON + _LUA_DETACH)
        self._count = self._redis.register_script(_LUA_COMMON + _LUA_COUNT)
        self._cancel = self._redis.register_script(_LUA_COMMON + _LUA_CANCEL)
        self._delete = self._redis.register_script(_LUA_COMMON + _LUA_DELETE)
        self._probe_script = self._redis.register_script(_LUA_COMMON + _LUA_PROBE)
        self._heartbeat_script = self._redis.register_script(_LUA_COMMON + _LUA_HEARTBEAT)
        self._owned: dict[str, _Owned] = {}
        self._subscriptions: dict[str, str] = {}  # subscriber id -> stream id
        self._background: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._heartbeats: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._closing = False
        self._closed = False
        self._stored_streams = 0
        self._stored_bytes = 0

    @classmethod
    async def connect(
        cls,
        settings: Settings,
        *,
        on_end: Callable[[EndReason], None] | None = None,
        key_prefix: str = "ssechat",
    ) -> RedisHub:
        """A hub on ``settings.redis_url``; raises ``HubUnavailable`` if Redis does not answer."""
        hub = cls(
            redis_url=settings.redis_url,
            keepalive_s=settings.keepalive_s,
            stream_ttl_s=settings.stream_ttl_s,
            resume_grace_s=settings.resume_grace_s,
            max_streams=settings.max_streams,
            max_buffered_bytes=settings.max_buffered_bytes,
            on_end=on_end,
            key_prefix=key_prefix,
        )
        try:
            await hub._open()
        except BaseException:
            await hub.aclose()
            raise
        return hub

    async def _open(self) -> None:
        try:
            await self._retrying(self._heartbeat, "connect", window_s=5.0)
        except HubUnavailable as error:
            raise HubUnavailable(
                f"Cannot reach Redis at {_redact(self._url)} (SSECHAT_REDIS_URL): {error.message}"
            ) from error
        self._listener = asyncio.create_task(self._listen(), name="redis hub: control channel")
        self._heartbeats = asyncio.create_task(self._beat(), name="redis hub: heartbeat")
        try:
            async with asyncio.timeout(5.0):
                await self._listening.wait()
        except TimeoutError:
            raise HubUnavailable(
                f"Could not subscribe to the control channel on {_redact(self._url)}."
            ) from None
        logger.info("redis hub: worker %s on %s", self.worker_id, _redact(self._url))

    # -- bookkeeping visible to metrics and tests ----------------------------------------------
    @property
    def live_streams(self) -> int:
        """Generations running in this worker."""
        return sum(1 for stream in self._owned.values() if not stream.produced_all)

    @property
    def stored_streams(self) -> int:
        """Streams stored in Redis, all workers together (as of the last heartbeat)."""
        return self._stored_streams

    @property
    def buffered_bytes(self) -> int:
        """Payload bytes stored in Redis, all workers together (as of the last heartbeat)."""
        return self._stored_bytes

    # -- keys ------------------------------------------------------------------------------
    def _events_key(self, stream_id: str) -> str:
        return f"{self._prefix}stream:{stream_id}:events"

    @property
    def _channel(self) -> str:
        return f"{self._prefix}worker:{self.worker_id}"

    # -- protocol ----------------------------------------------------------------------------
    async def start(
        self,
        stream_id: str,
        owner: str | None,
        generation: Generation,
        *,
        background: bool = False,
    ) -> None:
        if self._closing:
            raise HubUnavailable("Server shutting down.")
        orphan = json.dumps(
            [
                part
                for event in generation.closing_events("error", _ORPHAN_MESSAGE)
                for part in event
            ]
        )
        reply = await self._retrying(
            lambda: self._admit(
                args=[
                    self._prefix,
                    stream_id,
                    owner or "",
                    self.worker_id,
                    self._max_streams,
                    self._max_bytes,
                    self._live_ms,
                    orphan,
                ]
            ),
            "start",
        )
        if reply[0] == "exists":
            raise ValueError(f"stream id {stream_id} already exists")
        if reply[0] == "full":
            raise HubFull(
                f"Server at capacity: {reply[1]} streams stored, {reply[2]} bytes buffered, "
                "none finished to make room. Retry shortly."
            )
        stream = _Owned(
            stream_id,
            generation,
            expires_at=time.monotonic() + self._live_ms / 1000,
            background=background,
        )
        self._owned[stream_id] = stream
        stream.producer = asyncio.create_task(self._produce(stream), name=f"generation {stream_id}")
        # A task cancelled before its first step never runs its body (no
        # except/finally): settle the stream from outside in that case.
        stream.producer.add_done_callback(lambda _task: self._settle(stream))
        stream.writer = asyncio.create_task(self._write(stream), name=f"writer {stream_id}")

    async def subscribe(self, stream_id: str, after: int, owner: str | None) -> RedisSubscription:
        subscriber = uuid.uuid4().hex
        reply = await self._retrying(
            lambda: self._attach(
                args=[self._prefix, stream_id, owner or "", subscriber, round(_LEASE_S * 1000)]
            ),
            "subscribe",
        )
        if reply is None:
            raise _not_found(stream_id)
        _state, last = reply
        self._subscriptions[subscriber] = stream_id
        return RedisSubscription(self, stream_id, subscriber, min(max(after, 0), int(last)))

    async def cancel(self, stream_id: str, owner: str | None) -> bool:
        reply = await self._retrying(
            lambda: self._cancel(args=[self._prefix, stream_id, owner or ""]), "cancel"
        )
        if reply is None:
            raise _not_found(stream_id)
        state, last = reply
        if state != "live":
            return False
        local = self._owned.get(stream_id)
        if local is not None:
            # Ours: no need to wait for our own message to come back.
            self._stop(local, "cancelled", "cancelled by request")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CANCEL_WAIT_S):
                    await local.finished.wait()
            return True
        await self._wait_finished(stream_id, int(last))
        return True

    async def delete(self, stream_id: str, owner: str | None) -> None:
        await self.cancel(stream_id, owner)  # raises StreamNotFound for unknown or foreign
        deleted = await self._retrying(
            lambda: self._delete(args=[self._prefix, stream_id, owner or ""]), "delete"
        )
        if not deleted:
            raise _not_found(stream_id)

    async def drain(self) -> None:
        """Refuse new streams, end local generations (reason ``shutdown``) and wait
        (bounded) until their closing events are in Redis. Readers keep working,
        so this worker's own clients get those events too (the app's SIGTERM hook)."""
        self._closing = True
        owned = list(self._owned.values())
        for stream in owned:
            self._stop(stream, "shutdown", "server shutting down")
        writers = [stream.writer for stream in owned if stream.writer is not None]
        if writers:
            await asyncio.wait(writers, timeout=_SHUTDOWN_FLUSH_S)

    async def readiness(self) -> str | None:
        try:
            async with asyncio.timeout(1.0):
                await self._redis.ping()
        except (RedisError, OSError, TimeoutError) as error:
            return f"Redis at {_redact(self._url)} is unreachable: {error or type(error).__name__}"
        return None

    async def aclose(self) -> None:
        """``drain``, then stop the background tasks and close the connection pools."""
        if self._closed:
            return
        owned = list(self._owned.values())
        await self.drain()
        tasks = [task for s in owned for task in (s.writer, s.producer) if task is not None]
        services = [task for task in (self._listener, self._heartbeats) if task is not None]
        services += self._background
        for task in (*tasks, *services):
            task.cancel()  # no-op for the finished ones
        await asyncio.gather(*tasks, *services, return_exceptions=True)
        with contextlib.suppress(RedisError, OSError):
            await self._redis.delete(self._channel)  # the liveness key has the channel's name
        self._closed = True
        await self._redis.aclose()
        await self._blocking.aclose()

    # -- producing (on the owning worker) ------------------------------------------------------
    async def _produce(self, stream: _Owned) -> None:
        try:
            templates = stream.generation.templates
            async for item in stream.generation.events():
                stream.push(expand(templates, item))
        except asyncio.CancelledError:
            reason = stream.end_reason or "shutdown"
            self._close_early(stream, reason, stream.end_message or reason)
        except Exception as error:  # the generation already turns engine faults into events
            logger.exception("generation %s failed", stream.stream_id)
            self._close_early(stream, "error", str(error) or type(error).__name__)
        finally:
            stream.produced_all = True
            stream.wake.set()

    def _settle(self, stream: _Owned) -> None:
        if not stream.produced_all:  # cancelled before it ever ran
            self._close_early(stream, stream.end_reason or "shutdown", stream.end_message)
            stream.produced_all = True
            stream.wake.set()

    def _close_early(self, stream: _Owned, reason: EndReason, message: str) -> None:
        for event in stream.generation.closing_events(reason, message or reason):
            stream.push(event)
        stream.end_marker = reason
        if self._on_end is not None:
            self._on_end(reason)

    def _stop(self, stream: _Owned, reason: EndReason, message: str) -> None:
        """Stop a local generation early; the first reason given wins."""
        producer = stream.producer
        if producer is None or producer.done() or stream.end_reason is not None:
            return
        stream.end_reason = reason
        stream.end_message = message
        producer.cancel()

    async def _write(self, stream: _Owned) -> None:
        """Flush the stream's events to Redis in order, riding out outages."""
        backoff = _BACKOFF_MIN_S
        outage_since: float | None = None
        try:
            while True:
                while not stream.pending and not stream.produced_all:
                    stream.wake.clear()
                    await stream.wake.wait()
                batch = stream.pending[:_WRITE_BATCH]
                final = stream.produced_all and len(batch) == len(stream.pending)
                try:
                    status = await self._append(
                        args=[
                            self._prefix,
                            stream.stream_id,
                            self.worker_id,
                            stream.written + 1,
                            stream.end_marker if final else "",
                            self._ttl_ms,
                            self._live_ms,
                            *(part for event in batch for part in event),
                        ]
                    )
                except RedisError as error:
                    now = time.monotonic()
                    if outage_since is None:
                        outage_since = now
                        logger.warning(
                            "stream %s: cannot write to Redis (%s); holding %d events",
                            stream.stream_id,
                            error,
                            len(stream.pending),
                        )
                    if now - outage_since > self._outage_budget_s:
                        self._stop(stream, "error", "the stream store (Redis) is unavailable")
                    if now > stream.expires_at:
                        logger.error(
                            "stream %s: Redis away past the stream's lifetime; dropping %d events",
                            stream.stream_id,
                            len(stream.pending),
                        )
                        return
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _BACKOFF_MAX_S)
                    continue
                if outage_since is not None:
                    logger.info("stream %s: Redis is back, writing on", stream.stream_id)
                    outage_since = None
                    backoff = _BACKOFF_MIN_S
                if status != "ok":
                    # The stream is not ours any more (Redis lost it, or it was finished
                    # as an orphan while we could not renew our lease).
                    logger.warning("stream %s is gone from Redis (%s)", stream.stream_id, status)
                    self._stop(stream, "error", "the stream was lost from the stream store")
                    return
                del stream.pending[: len(batch)]
                stream.written += len(batch)
                stream.expires_at = time.monotonic() + self._live_ms / 1000
                if final:
                    return
        finally:
            self._owned.pop(stream.stream_id, None)
            if stream.grace is not None:
                stream.grace.cancel()
            if stream.producer is not None and not stream.producer.done():
                self._stop(stream, "error", "the stream store (Redis) is unavailable")
            stream.finished.set()

    # -- reading (any worker) ------------------------------------------------------------------
    async def _read(self, stream_id: str, cursor: int) -> list[tuple[str, dict[str, str]]] | None:
        """Entries after ``cursor`` (at most one XREAD BLOCK); ``None`` after keepalive_s idle."""
        key = self._events_key(stream_id)
        recovered = False
        deadline = time.monotonic() + _RETRY_S
        backoff = _BACKOFF_MIN_S
        while True:
            try:
                reply = await self._blocking.xread(
                    {key: f"{cursor}-0"}, count=_READ_COUNT, block=self._block_ms
                )
                break
            except RedisError as error:
                if not _transient(error) or time.monotonic() + backoff > deadline:
                    logger.warning("stream %s: reading from Redis failed: %s", stream_id, error)
                    raise HubUnavailable(_UNAVAILABLE) from error
                recovered = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
        if recovered:
            # Redis may have come back empty: then the stream is gone, say so now.
            await self._probe(stream_id)
        if not reply:
            return None
        return _entries(reply)

    async def _probe(self, stream_id: str) -> None:
        """Raise ``StreamNotFound`` if the stream vanished; finish it if its worker died."""
        status = await self._retrying(
            lambda: self._probe_script(
                args=[self._prefix, stream_id, self._ttl_ms, round(_LEASE_S * 1000)]
            ),
            "read",
        )
        if status == "missing":
            raise StreamNotFound(
                f"Stream {stream_id!r} is gone: it expired, or the stream store lost it."
            )
        if status == "orphaned":
            logger.warning("stream %s: its worker is gone; ended it with an error", stream_id)

    async def _detach(self, stream_id: str, subscriber: str) -> None:
        self._subscriptions.pop(subscriber, None)
        if self._closed:
            return
        try:
            await self._detach_script(args=[self._prefix, stream_id, subscriber])
        except RedisError as error:  # its lease lapses by itself within _LEASE_S
            logger.info("stream %s: could not detach from Redis: %s", stream_id, error)

    async def _wait_finished(self, stream_id: str, cursor: int) -> None:
        """Wait (bounded) until a stream owned elsewhere has its end marker."""
        key = self._events_key(stream_id)
        deadline = time.monotonic() + _CANCEL_WAIT_S
        try:
            while time.monotonic() < deadline:
                reply = await self._blocking.xread(
                    {key: f"{cursor}-0"}, count=_READ_COUNT, block=100
                )
                if not reply:
                    await self._probe(stream_id)
                    continue
                for entry_id, fields in _entries(reply):
                    if "end" in fields:
                        return
                    cursor = int(entry_id.partition("-")[0])
        except (RedisError, HubError) as error:
            logger.info("stream %s: stopped waiting for the cancel to land: %s", stream_id, error)
            return
        logger.warning("stream %s: cancel requested, its worker has not ended it yet", stream_id)

    # -- signals -------------------------------------------------------------------------------
    async def _listen(self) -> None:
        """Follow this worker's control channel, resubscribing after a connection loss."""
        backoff = _BACKOFF_MIN_S
        connected = False
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        if self._listening.is_set() and not connected:
                            logger.info("redis hub: control channel back")
                        connected = True
                        backoff = _BACKOFF_MIN_S
                        self._listening.set()
                    elif message["type"] == "message":
                        self._on_control(str(message["data"]))
            except RedisError as error:
                if connected:
                    logger.warning("redis hub: control channel lost (%s); reconnecting", error)
                connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await cast(Any, pubsub).aclose()  # untyped in redis-py

    def _on_control(self, text: str) -> None:
        kind, _, stream_id = text.partition(" ")
        stream = self._owned.get(stream_id)
        if stream is None:
            return
        if kind == "cancel":
            self._stop(stream, "cancelled", "cancelled by request")
        elif kind == "detached":
            self._no_subscribers(stream)

    def _no_subscribers(self, stream: _Owned) -> None:
        """Redis says nobody reads this stream: re-count after the grace period."""
        if stream.produced_all or stream.grace is not None or stream.checking or stream.background:
            return
        if self._grace_s == 0:
            stream.checking = True
            self._spawn(self._check_abandoned(stream))
        else:
            stream.grace = asyncio.get_running_loop().call_later(
                self._grace_s, self._grace_over, stream
            )

    def _grace_over(self, stream: _Owned) -> None:
        stream.grace = None
        stream.checking = True
        self._spawn(self._check_abandoned(stream))

    async def _check_abandoned(self, stream: _Owned) -> None:
        try:
            left = await self._count(args=[self._prefix, stream.stream_id])
        except RedisError:
            return  # the next heartbeat counts again
        finally:
            stream.checking = False
        if left == 0:
            self._stop(stream, "abandoned", "no subscriber left")

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(_HEARTBEAT_S)
            try:
                await self._heartbeat()
            except RedisError as error:
                logger.debug("redis hub: heartbeat failed: %s", error)

    async def _heartbeat(self) -> None:
        """Renew this worker's leases; act on what Redis says about its streams."""
        owned = [stream for stream in self._owned.values() if not stream.produced_all]
        pairs: list[str] = []
        for subscriber, stream_id in self._subscriptions.items():
            pairs += (stream_id, subscriber)
        reply = await self._heartbeat_script(
            args=[
                self._prefix,
                self.worker_id,
                round(_LEASE_S * 1000),
                self._live_ms,
                round(_LEASE_S * 1000),
                len(owned),
                *(stream.stream_id for stream in owned),
                *pairs,
            ]
        )
        self._stored_streams, self._stored_bytes = (int(value) for value in reply[0])
        now = time.monotonic()
        for stream, (status, subscribers, attached, cancel) in zip(owned, reply[1:], strict=True):
            if status == "lost":
                self._stop(stream, "error", "the stream was lost from the stream store")
                continue
            stream.expires_at = now + self._live_ms / 1000
            if cancel:
                self._stop(stream, "cancelled", "cancelled by request")
            elif int(subscribers) == 0 and int(attached):
                self._no_subscribers(stream)

    async def _retrying(
        self, operation: Callable[[], Awaitable[T]], what: str, *, window_s: float = _RETRY_S
    ) -> T:
        """Run a (idempotent) Redis operation, riding out connection errors for ``window_s``."""
        deadline = time.monotonic() + window_s
        backoff = _BACKOFF_MIN_S
        while True:
            try:
                return await operation()
            except RedisError as error:
                if not _transient(error) or time.monotonic() + backoff > deadline:
                    logger.warning("redis hub: %s failed: %s", what, error)
                    raise HubUnavailable(_UNAVAILABLE) from error
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX_S)

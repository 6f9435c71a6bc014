"""Per-caller limits: requests per minute and concurrent generations → 429 + ``Retry-After``.

The caller ("subject") is the API key's owner tag, or the client address
when the API is open (behind a proxy, that is the address uvicorn resolves
from ``X-Forwarded-For`` for trusted proxies, see ``--forwarded-allow-ips``).

What counts
-----------
- ``SSECHAT_RATE_LIMIT_PER_MIN``: every ``POST /v1/chat/completions``
  (streaming or not, accepted or refused). Resume, cancel, ``/v1/models`` and
  ``/metrics`` do not count: a browser ``EventSource`` reconnecting after a
  network blip, or a Stop button, must never be refused for being busy.
  Fixed one-minute windows (``INCR`` + ``EXPIRE`` of a key per minute), so a
  caller may burst up to twice the limit across a window boundary;
  ``Retry-After`` is the time left in the window.
- ``SSECHAT_MAX_CONCURRENT_STREAMS_PER_KEY``: generations running at once
  (streaming or not). The slot belongs to the *generation*, not to the HTTP
  response: it is taken before the generation starts and released when the
  generation ends (finished, failed, cancelled, abandoned after
  ``resume_grace_s``, or stopped by shutdown). A client that disconnects and
  resumes keeps its one slot rather than taking a second, and a stream left
  running during the resume grace period still counts, because it still
  uses the engine.

Where the counts live
---------------------
- ``MemoryLimits``: this process (the memory hub runs one worker).
- ``RedisLimits`` (``SSECHAT_HUB=redis``): shared by every worker and replica.
  Request windows are ``P:rpm:{subject}:{minute}`` counters. Each running
  generation is a member of the sorted set ``P:slots:{subject}`` scored with a
  lease deadline that its worker renews every ``stream_slot_ttl_s / 3``; taking
  a slot first drops expired members, so a worker that crashed (or lost
  Redis) without releasing frees its slots within ``stream_slot_ttl_s``
  instead of leaking them forever. Times come from Redis' ``TIME``, so the
  workers' clocks do not matter. If Redis cannot be reached the request gets
  a 503 (fail closed, like the redis hub itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Protocol

from fastapi import Request

from backend.config import Settings
from backend.errors import APIError
from backend.hub.base import EndReason, Event, Generation
from backend.sse import is_done

logger = logging.getLogger(__name__)

WINDOW_S = 60
# Retry-After for the concurrency cap: we cannot know when a slot frees up.
CONCURRENCY_RETRY_AFTER_S = 1


def caller_subject(request: Request, owner: str | None) -> str:
    """Whom a limit applies to: the key, or (open API) the client address."""
    if owner is not None:
        return f"key:{owner}"
    host = request.client.host if request.client is not None else "unknown"
    return f"addr:{host}"


def too_many_requests(limit: int, retry_after_s: int) -> APIError:
    # OpenAI's shape for RPM limits: type "requests", code "rate_limit_exceeded".
    return APIError(
        429,
        f"Rate limit reached: {limit} requests per minute. Please try again in {retry_after_s}s.",
        error_type="requests",
        code="rate_limit_exceeded",
        headers={
            "Retry-After": str(retry_after_s),
            "X-RateLimit-Limit-Requests": str(limit),
            "X-RateLimit-Remaining-Requests": "0",
            "X-RateLimit-Reset-Requests": f"{retry_after_s}s",
        },
    )


def too_many_streams(limit: int) -> APIError:
    return APIError(
        429,
        f"Too many concurrent generations: at most {limit} per API key "
        "(or per client address when the API is open). Wait for one to finish or cancel one.",
        error_type="requests",
        code="concurrent_streams_exceeded",
        headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER_S)},
    )


def limiter_unavailable(error: Exception) -> APIError:
    return APIError(
        503,
        f"Rate limiter unavailable (Redis): {type(error).__name__}. Retry shortly.",
        error_type="server_error",
        code="rate_limiter_unavailable",
        headers={"Retry-After": "1"},
    )


class StreamSlot:
    """One held concurrency slot; ``release`` is idempotent and never blocks."""

    def __init__(self, on_release: Callable[[], None] | None = None) -> None:
        self._on_release = on_release

    @property
    def held(self) -> bool:
        return self._on_release is not None

    def release(self) -> None:
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release()


class Limits(Protocol):
    @property
    def held_slots(self) -> int:
        """Slots held by generations running in this process."""
        ...

    async def check_rate(self, subject: str) -> None:
        """Count one request; raise a 429 ``APIError`` beyond the per-minute limit."""
        ...

    async def acquire_stream(self, subject: str) -> StreamSlot:
        """Take a concurrency slot; raise a 429 ``APIError`` at the cap."""
        ...

    async def aclose(self) -> None: ...


class MemoryLimits:
    """Counts in this process. Only the current minute's counters are kept."""

    def __init__(
        self,
        *,
        per_minute: int,
        max_concurrent: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_minute = per_minute
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._window = -1
        self._counts: dict[str, int] = {}
        self._running: dict[str, int] = {}

    @property
    def held_slots(self) -> int:
        return sum(self._running.values())

    async def check_rate(self, subject: str) -> None:
        if not self.per_minute:
            return
        now = self._clock()
        window = int(now // WINDOW_S)
        if window != self._window:
            self._window = window
            self._counts.clear()  # bounded: one entry per caller seen this minute
        count = self._counts.get(subject, 0) + 1
        self._counts[subject] = count
        if count > self.per_minute:
            retry_after = max(1, math.ceil((window + 1) * WINDOW_S - now))
            raise too_many_requests(self.per_minute, retry_after)

    async def acquire_stream(self, subject: str) -> StreamSlot:
        if not self.max_concurrent:
            return StreamSlot()
        running = self._running.get(subject, 0)
        if running >= self.max_concurrent:
            raise too_many_streams(self.max_concurrent)
        self._running[subject] = running + 1
        return StreamSlot(lambda: self._release(subject))

    def _release(self, subject: str) -> None:
        left = self._running.get(subject, 0) - 1
        if left > 0:
            self._running[subject] = left
        else:
            self._running.pop(subject, None)

    async def aclose(self) -> None:
        return None


# KEYS-less scripts (names built from ARGV[1], the prefix), like the redis hub's:
# one Redis, not Redis Cluster.
_LUA_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# ARGV: prefix, subject, window_s → {count, ms left in the window}
_LUA_HIT = (
    _LUA_NOW_MS
    + """
local window_ms = tonumber(ARGV[3]) * 1000
local window = math.floor(now / window_ms)
local key = ARGV[1] .. 'rpm:' .. ARGV[2] .. ':' .. window
local count = redis.call('INCR', key)
if count == 1 then redis.call('PEXPIRE', key, 2 * window_ms) end
return {count, (window + 1) * window_ms - now}
"""
)

# ARGV: prefix, subject, member, limit, ttl_ms → {1 | 0, held}
_LUA_ACQUIRE = (
    _LUA_NOW_MS
    + """
local key = ARGV[1] .. 'slots:' .. ARGV[2]
local ttl = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
local held = redis.call('ZCARD', key)
if held >= tonumber(ARGV[4]) then return {0, held} end
redis.call('ZADD', key, now + ttl, ARGV[3])
redis.call('PEXPIRE', key, ttl)
return {1, held + 1}
"""
)

# ARGV: prefix, ttl_ms, then subject, member pairs. XX: never re-add a slot that was
# released meanwhile (the release may reach Redis before this renewal does).
_LUA_RENEW = (
    _LUA_NOW_MS
    + """
local ttl = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  local key = ARGV[1] .. 'slots:' .. ARGV[i]
  redis.call('ZADD', key, 'XX', now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl)
end
return 1
"""
)


class RedisLimits:
    """Counts in Redis, shared by every worker and replica."""

    def __init__(
        self,
        *,
        redis_url: str,
        per_minute: int,
        max_concurrent: int,
        slot_ttl_s: float = 30.0,
        key_prefix: str = "ssechat:limits:",
    ) -> None:
        from redis.asyncio import Redis  # optional extra: import lazily

        self.per_minute = per_minute
        self.max_concurrent = max_concurrent
        self._prefix = key_prefix
        self._ttl_ms = max(1, round(slot_ttl_s * 1000))
        self._redis: Any = Redis.from_url(
            redis_url, decode_responses=True, socket_timeout=5.0, socket_connect_timeout=2.0
        )
        self._hit = self._redis.register_script(_LUA_HIT)
        self._acquire = self._redis.register_script(_LUA_ACQUIRE)
        self._renew = self._redis.register_script(_LUA_RENEW)
        self._held: dict[str, str] = {}  # member -> subject, for this worker's generations
        self._background: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None

    @classmethod
    async def connect(cls, settings: Settings) -> RedisLimits:
        limits = cls(
            redis_url=settings.redis_url,
            per_minute=settings.rate_limit_per_min,
            max_concurrent=settings.max_concurrent_streams_per_key,
            slot_ttl_s=settings.stream_slot_ttl_s,
        )
        if limits.max_concurrent:
            limits._renewer = asyncio.create_task(limits._renew_forever(), name="limits: renew")
        return limits

    @property
    def held_slots(self) -> int:
        return len(self._held)

    async def check_rate(self, subject: str) -> None:
        if not self.per_minute:
            return
        from redis.exceptions import RedisError

        try:
            count, ms_left = await self._hit(args=[self._prefix, subject, WINDOW_S])
        except (RedisError, OSError) as error:
            logger.warning("rate limiter: Redis unavailable: %s", type(error).__name__)
            raise limiter_unavailable(error) from None
        if int(count) > self.per_minute:
            raise too_many_requests(self.per_minute, max(1, math.ceil(int(ms_left) / 1000)))

    async def acquire_stream(self, subject: str) -> StreamSlot:
        if not self.max_concurrent:
            return StreamSlot()
        from redis.exceptions import RedisError

        member = uuid.uuid4().hex
        try:
            granted, _held = await self._acquire(
                args=[self._prefix, subject, member, self.max_concurrent, self._ttl_ms]
            )
        except (RedisError, OSError) as error:
            logger.warning("stream limiter: Redis unavailable: %s", type(error).__name__)
            raise limiter_unavailable(error) from None
        if not int(granted):
            raise too_many_streams(self.max_concurrent)
        self._held[member] = subject
        return StreamSlot(lambda: self._release(member))

    def _release(self, member: str) -> None:
        subject = self._held.pop(member, None)
        if subject is None:
            return
        # Never block the caller (a generation ending) on Redis; if this fails,
        # the lease runs out on its own within the slot TTL.
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # released by the garbage collector outside the loop
            return
        task = loop.create_task(self._zrem(subject, member))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _zrem(self, subject: str, member: str) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.zrem(f"{self._prefix}slots:{subject}", member)
        except (RedisError, OSError) as error:
            logger.warning(
                "stream limiter: could not release a slot (%s); it expires by itself",
                type(error).__name__,
            )

    async def _renew_forever(self) -> None:
        from redis.exceptions import RedisError

        interval = self._ttl_ms / 3000
        while True:
            await asyncio.sleep(interval)
            held = list(self._held.items())
            if not held:
                continue
            args: list[Any] = [self._prefix, self._ttl_ms]
            for member, subject in held:
                args.extend((subject, member))
            try:
                await self._renew(args=args)
            except (RedisError, OSError) as error:
                logger.warning("stream limiter: cannot renew slot leases: %s", error)

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        for member in list(self._held):
            self._release(member)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._redis.aclose()


async def build_limits(settings: Settings) -> Limits:
    """Redis-backed with the redis hub (shared by all workers), else in this process."""
    wanted = settings.rate_limit_per_min or settings.max_concurrent_streams_per_key
    if settings.hub == "redis" and wanted:
        return await RedisLimits.connect(settings)
    return MemoryLimits(
        per_minute=settings.rate_limit_per_min,
        max_concurrent=settings.max_concurrent_streams_per_key,
    )


async def close_iterator(iterator: AsyncIterator[Any]) -> None:
    """Close an async generator we stopped iterating early (``async for`` does not),
    so what it holds (an upstream connection) is released now, not at garbage collection."""
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


async def get_limits(request: Request) -> Limits:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hop per request for an attribute read.
    limits: Limits = request.app.state.limits
    return limits


class SlotGeneration:
    """Holds a concurrency slot for exactly as long as the wrapped generation runs.

    Released at the first of: the terminal ``[DONE]`` passing through; the
    generator ending for any reason (finished, engine error, cancelled by a
    request, abandoned, shutdown: cancellation reaches the generator's
    ``finally``); the hub dropping the generation (a task cancelled before it
    ever ran). ``closing_events`` is *not* a release point: a hub may call it
    up front (the redis hub stores the payloads that end an orphaned stream).
    """

    def __init__(self, inner: Generation, slot: StreamSlot) -> None:
        self._inner = inner
        self._slot = slot
        weakref.finalize(self, slot.release)

    async def events(self) -> AsyncIterator[Event]:
        events = self._inner.events()
        try:
            async for event in events:
                if is_done(event[1]):
                    self._slot.release()
                yield event
        finally:
            self._slot.release()
            await close_iterator(events)

    def closing_events(self, reason: EndReason, message: str) -> Sequence[Event]:
        return self._inner.closing_events(reason, message)

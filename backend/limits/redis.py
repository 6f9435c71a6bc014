"""Rate and concurrency limits counted in Redis, shared by every worker and replica.

Request windows are ``P:rpm:{subject}:{minute}`` counters. Each running
generation is a member of the sorted set ``P:slots:{subject}`` scored with a
lease deadline that its worker renews every ``stream_slot_ttl_s / 3``; taking
a slot first drops expired members, so a worker that crashed (or lost Redis)
without releasing frees its slots within ``stream_slot_ttl_s``. Times come
from Redis' ``TIME``. The scripts (``lua/*.lua``) build key names from
ARGV[1], the prefix: one Redis, not Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from importlib.resources import files
from typing import Any

from backend.limits.base import (
    WINDOW_S,
    StreamSlot,
    limiter_unavailable,
    too_many_requests,
    too_many_streams,
)

logger = logging.getLogger(__name__)


def _script(name: str) -> str:
    return files("backend.limits").joinpath("lua", name).read_text(encoding="utf-8")


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
        self._hit = self._redis.register_script(_script("hit.lua"))
        self._acquire = self._redis.register_script(_script("acquire.lua"))
        self._renew = self._redis.register_script(_script("renew.lua"))
        self._held: dict[str, str] = {}  # member -> subject, for this worker's generations
        self._background: set[asyncio.Task[None]] = set()
        self._renewer: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, *, redis_url: str, per_minute: int, max_concurrent: int, slot_ttl_s: float
    ) -> RedisLimits:
        limits = cls(
            redis_url=redis_url,
            per_minute=per_minute,
            max_concurrent=max_concurrent,
            slot_ttl_s=slot_ttl_s,
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

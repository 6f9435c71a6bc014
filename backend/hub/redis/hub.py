"""``RedisHub``: the ``StreamHub`` on Redis (the package docstring has the design)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable

from redis.exceptions import RedisError

from backend.config import Settings
from backend.hub.base import (
    EndReason,
    Generation,
    HubFull,
    HubUnavailable,
    StreamNotFound,
    hub_bounds,
)
from backend.hub.local import LocalStream, LocalSubscription, Ticker
from backend.hub.log import EventLog
from backend.hub.redis.batch import Batcher
from backend.hub.redis.connection import (
    COMMAND_TIMEOUT_S,
    RETRY_S,
    Scripts,
    command_client,
    dedicated_client,
    redact,
    retrying,
)
from backend.hub.redis.owned import Owned
from backend.hub.redis.reader import Reader
from backend.hub.redis.signals import LEASE_S, LOST_MESSAGE, Signals
from backend.hub.redis.writer import Writer
from backend.hub.runner import Runner

logger = logging.getLogger(__name__)

# A live stream's keys outlive its last sign of life by at least this much.
_LIVE_LEASE_S = 30.0
# How long ``cancel`` waits for the stream's end, and ``drain`` for the last writes.
_CANCEL_WAIT_S = 3.0
_SHUTDOWN_FLUSH_S = 3.0
_ORPHAN_MESSAGE = "the server process running this stream stopped"
_STORE_AWAY = "the stream store (Redis) is unavailable"


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
        flush_window_s: float = 0.0,
        key_prefix: str = "ssechat",
    ) -> None:
        self.keepalive_s = keepalive_s
        self._url = redis_url
        self._prefix = key_prefix + ":"
        self._ttl_ms = max(1, round(stream_ttl_s * 1000))
        live_ms = round(max(stream_ttl_s, _LIVE_LEASE_S) * 1000)
        self._live_s = live_ms / 1000
        self._outage_budget_s = max(resume_grace_s, RETRY_S)
        self._max_streams = max_streams
        self._max_bytes = max_buffered_bytes
        self.worker_id = uuid.uuid4().hex
        self._commands = command_client(redis_url, self.worker_id)
        self._scripts = Scripts(self._commands)
        self._batch = Batcher(self._commands, self._scripts.all)
        self._writer_client = dedicated_client(
            redis_url, self.worker_id, socket_timeout=COMMAND_TIMEOUT_S
        )
        self._reader_client = dedicated_client(
            redis_url, self.worker_id, socket_timeout=keepalive_s + COMMAND_TIMEOUT_S
        )
        self._owned: dict[str, Owned] = {}
        self._ticker = Ticker(keepalive_s, flush_window_s)
        self._writer = Writer(
            self._writer_client,
            self._scripts.append,
            prefix=self._prefix,
            worker_id=self.worker_id,
            ttl_ms=self._ttl_ms,
            live_ms=live_ms,
            max_bytes=max_buffered_bytes,
            on_flushed=self._release,
            on_lost=self._lost,
            on_outage=self._outage,
        )
        self._runner: Runner[Owned] = Runner(
            on_append=self._writer.mark, on_finish=self._finished, on_end=on_end
        )
        self._reader = Reader(
            self._reader_client,
            self._batch,
            self._scripts,
            prefix=self._prefix,
            worker_id=self.worker_id,
            ticker=self._ticker,
            ttl_ms=self._ttl_ms,
            lease_ms=round(LEASE_S * 1000),
        )
        self._signals = Signals(
            self._commands,
            self._batch,
            self._scripts,
            prefix=self._prefix,
            worker_id=self.worker_id,
            grace_s=resume_grace_s,
            live_ms=live_ms,
            owned=self._owned,
            remote_readers=self._reader.readers,
            stop=self._runner.stop,
        )
        self._closing = False
        self._closed = False

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
            **hub_bounds(settings),
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
            await retrying(self._signals.heartbeat, "connect", window_s=5.0)
        except HubUnavailable as error:
            raise HubUnavailable(
                f"Cannot reach Redis at {redact(self._url)} (SSECHAT_REDIS_URL): {error.message}"
            ) from error
        self._signals.start()
        try:
            async with asyncio.timeout(5.0):
                await self._signals.listening.wait()
        except TimeoutError:
            raise HubUnavailable(
                f"Could not subscribe to the control channel on {redact(self._url)}."
            ) from None
        self._writer.start()
        logger.info("redis hub: worker %s on %s", self.worker_id, redact(self._url))

    # -- bookkeeping visible to metrics and tests ----------------------------------------------
    @property
    def live_streams(self) -> int:
        """Generations running in this worker."""
        return sum(1 for run in self._owned.values() if not run.stream.done)

    @property
    def stored_streams(self) -> int:
        """Streams stored in Redis, all workers together (as of the last heartbeat)."""
        return self._signals.stored_streams

    @property
    def buffered_bytes(self) -> int:
        """Bytes stored in Redis, all workers together (as of the last heartbeat)."""
        return self._signals.stored_bytes

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
        if stream_id in self._owned:
            raise ValueError(f"stream id {stream_id} already exists")
        orphan = json.dumps(
            [
                part
                for event in generation.closing_events("error", _ORPHAN_MESSAGE)
                for part in event
            ]
        )
        reply = await retrying(
            lambda: self._batch.script(
                self._scripts.admit,
                self._prefix,
                stream_id,
                owner or "",
                self.worker_id,
                self._max_streams,
                self._max_bytes,
                round(self._live_s * 1000),
                orphan,
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
        run = Owned(
            LocalStream(stream_id, EventLog()),
            generation,
            owner,
            background=background,
            expires_at=time.monotonic() + self._live_s,
        )
        self._owned[stream_id] = run
        self._runner.launch(run)

    async def subscribe(self, stream_id: str, after: int, owner: str | None) -> LocalSubscription:
        after = max(after, 0)
        run = self._owned.get(stream_id)
        if run is not None:
            # Ours: read it where it is made, as the memory hub does.
            if run.owner != owner:
                raise StreamNotFound.for_id(stream_id)
            self._signals.reattached(run)
            return LocalSubscription(
                run.stream,
                after,
                ticker=self._ticker,
                on_close=lambda: self._signals.no_subscribers(run),
            )
        return await self._reader.subscribe(stream_id, after, owner)

    async def cancel(self, stream_id: str, owner: str | None) -> bool:
        run = self._owned.get(stream_id)
        if run is not None:
            # Ours: no need to go through Redis to stop it.
            if run.owner != owner:
                raise StreamNotFound.for_id(stream_id)
            if run.stream.done:
                return False
            await self._runner.stop_and_wait(run, "cancelled", "cancelled by request")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_CANCEL_WAIT_S):
                    await run.flushed.wait()
            return True
        reply = await retrying(
            lambda: self._batch.script(self._scripts.cancel, self._prefix, stream_id, owner or ""),
            "cancel",
        )
        if reply is None:
            raise StreamNotFound.for_id(stream_id)
        state, last = reply
        if state != "live":
            return False
        await self._reader.wait_finished(stream_id, int(last), _CANCEL_WAIT_S)
        return True

    async def delete(self, stream_id: str, owner: str | None) -> None:
        await self.cancel(stream_id, owner)  # raises StreamNotFound for unknown or foreign
        run = self._owned.pop(stream_id, None)
        if run is not None:
            run.writable = False
        deleted = await retrying(
            lambda: self._batch.script(self._scripts.delete, self._prefix, stream_id, owner or ""),
            "delete",
        )
        if not deleted:
            raise StreamNotFound.for_id(stream_id)

    async def readiness(self) -> str | None:
        try:
            async with asyncio.timeout(1.0):
                await self._batch.command("PING")
        except (RedisError, OSError, TimeoutError) as error:
            return f"Redis at {redact(self._url)} is unreachable: {error or type(error).__name__}"
        return None

    async def drain(self) -> None:
        """Refuse new streams, end local generations (reason ``shutdown``) and wait
        (bounded) until their closing events are in Redis. Readers keep working,
        so this worker's own clients get those events too (the app's SIGTERM hook)."""
        self._closing = True
        owned = list(self._owned.values())
        for run in owned:
            self._runner.stop(run, "shutdown", "server shutting down")
        flushes = [asyncio.ensure_future(run.flushed.wait()) for run in owned]
        if flushes:
            _done, pending = await asyncio.wait(flushes, timeout=_SHUTDOWN_FLUSH_S)
            for waiter in pending:
                waiter.cancel()

    async def aclose(self) -> None:
        """``drain``, then stop the background tasks and close the connections."""
        if self._closed:
            return
        tasks = [run.task for run in self._owned.values() if run.task is not None]
        await self.drain()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._closed = True
        self._ticker.close()
        await self._writer.aclose()
        await self._reader.aclose()
        await self._signals.aclose()
        await self._batch.aclose()
        with contextlib.suppress(RedisError, OSError):
            await self._commands.delete(self._signals.channel)  # the liveness key: same name
        for client in (self._commands, self._writer_client, self._reader_client):
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()

    # -- internals ----------------------------------------------------------------------------
    def _finished(self, run: Owned) -> None:
        self._writer.mark(run)  # the end marker
        self._release(run)

    def _release(self, run: Owned) -> None:
        """Forget a finished stream that is all in Redis (or cannot be): resumes read Redis."""
        if run.stream.done and not run.writable and self._owned.get(run.stream_id) is run:
            del self._owned[run.stream_id]
            if run.grace is not None:
                run.grace.cancel()
                run.grace = None

    def _lost(self, run: Owned, status: str) -> None:
        logger.warning("stream %s is gone from Redis (%s)", run.stream_id, status)
        self._runner.stop(run, "error", LOST_MESSAGE)
        self._release(run)

    def _outage(self, run: Owned, outage_s: float) -> None:
        """Redis has been away for ``outage_s`` while ``run`` had events to write."""
        if outage_s > self._outage_budget_s and run.stream.subscribers == 0 and not run.background:
            self._runner.stop(run, "error", _STORE_AWAY)

"""The reader: one XREAD per worker for every stream its readers follow elsewhere.

A reader of a stream that another worker produces reads a ``Mirror``: a
``LocalStream`` this worker fills from Redis, shared by all its readers of
that stream. One task per worker keeps every mirror filled with a single
``XREAD BLOCK`` over all of them (one connection, whatever the number of
readers), and rebuilds each event from its stored form and the stream's
templates (``entries.py``), byte for byte what the producing worker's own
readers get.

A mirror starts at the lowest seq its first reader needs, never above the
stream's last event at the time (so it always sees the end marker, even for
a reader that claims an id the stream never reaches); a later reader that
needs earlier events gets them once, with ``backfill``.

The blocked XREAD is interrupted when a new stream joins (``wake.lua``
appends to this worker's wake stream, which the XREAD also follows from the
last entry it saw, so a wake-up sent before the XREAD arrives still counts).
Readers never wait on Redis themselves, only on their mirror: a
disconnect never cancels a Redis call.

A mirror idle for ``keepalive_s`` is probed (``probe.lua``): a stream that
vanished fails its readers with ``StreamNotFound``; one whose worker died
is finished with its error ending. Redis away for longer than ``RETRY_S``
fails every mirror with ``HubUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.hub.base import HubError, HubUnavailable, StreamEvent, StreamNotFound, Template
from backend.hub.local import LocalStream, LocalSubscription, Ticker
from backend.hub.log import EventLog
from backend.hub.redis.batch import Batcher
from backend.hub.redis.connection import (
    BACKOFF_MAX_S,
    BACKOFF_MIN_S,
    RETRY_S,
    UNAVAILABLE,
    Scripts,
    cancel_and_wait,
    retrying,
)
from backend.hub.redis.entries import READ_COUNT, Entries, Entry, gone, parse_templates

logger = logging.getLogger(__name__)

_WAKE_TTL_MS = 60_000


@dataclass(eq=False)
class Mirror:
    stream: LocalStream
    key: str
    cursor: str  # last entry id read
    refs: int = 0
    active_at: float = 0.0  # monotonic time of the last entry read or probe

    @property
    def following(self) -> bool:
        return not self.stream.done and self.stream.error is None


class Reader:
    def __init__(
        self,
        client: Redis,
        batch: Batcher,
        scripts: Scripts,
        *,
        prefix: str,
        worker_id: str,
        ticker: Ticker,
        ttl_ms: int,
        lease_ms: int,
    ) -> None:
        self._client = client
        self._batch = batch
        self._scripts = scripts
        self._entries = Entries(batch, scripts, prefix=prefix)
        self._prefix = prefix
        self._worker_id = worker_id
        self._wake_key = f"{prefix}wake:{worker_id}"
        self._wake_seen = "0-0"
        self._ticker = ticker
        self._keepalive_s = ticker.keepalive_s
        self._block_ms = max(1, round(ticker.keepalive_s * 1000))  # BLOCK 0 would mean forever
        self._lease_ms = lease_ms
        self._probe_args = [ttl_ms, lease_ms]
        self._mirrors: dict[str, Mirror] = {}
        # This worker's readers of other workers' streams: subscriber id -> stream id
        # (their leases, renewed by the heartbeat).
        self.readers: dict[str, str] = {}
        self._closed = False
        self._changed = asyncio.Event()
        self._in_flight: set[str] | None = None  # stream ids of the XREAD in flight
        self._waking = False
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()

    @property
    def mirrors(self) -> int:
        return len(self._mirrors)

    def events_key(self, stream_id: str) -> str:
        return f"{self._prefix}stream:{stream_id}:events"

    # -- readers ------------------------------------------------------------------------------
    async def subscribe(self, stream_id: str, after: int, owner: str | None) -> LocalSubscription:
        """A reader of a stream run elsewhere (or run here and already all in Redis)."""
        subscriber = uuid.uuid4().hex
        reply = await retrying(
            lambda: self._batch.script(
                self._scripts.attach,
                self._prefix,
                stream_id,
                owner or "",
                subscriber,
                self._lease_ms,
            ),
            "subscribe",
        )
        if reply is None:
            # A foreign stream looks exactly like a missing one: ids are not an oracle.
            raise StreamNotFound(f"No stream {stream_id!r} (unknown, expired, or not yours).")
        _state, last, *templates = cast(list[str], reply)
        # Never above the stream's last event: the mirror must see the end marker
        # even for a reader ahead of the stream (it then gets nothing: 204).
        mirror = self.follow(stream_id, min(after, int(last)), parse_templates(templates))
        self.readers[subscriber] = stream_id
        try:
            prefix = await self.backfill(mirror, after) if after < mirror.stream.log.base else []
        except BaseException:
            self._detached(mirror, subscriber)
            raise
        return LocalSubscription(
            mirror.stream,
            after,
            ticker=self._ticker,
            on_close=lambda: self._detached(mirror, subscriber),
            prefix=prefix,
        )

    def _detached(self, mirror: Mirror, subscriber: str) -> None:
        self.release(mirror)
        stream_id = self.readers.pop(subscriber, None)
        if stream_id is not None and not self._closed:
            self._spawn(self._detach(stream_id, subscriber))

    async def _detach(self, stream_id: str, subscriber: str) -> None:
        try:
            await self._batch.script(self._scripts.detach, self._prefix, stream_id, subscriber)
        except RedisError as error:  # its lease lapses by itself within the lease
            logger.info("stream %s: could not detach from Redis: %s", stream_id, error)

    async def wait_finished(self, stream_id: str, last: int, timeout_s: float) -> None:
        """Wait (bounded) until a stream run elsewhere has its end marker (a cancel)."""
        mirror = self.follow(stream_id, last, ())
        stream = mirror.stream
        try:
            async with asyncio.timeout(timeout_s):
                while not stream.done and stream.error is None:
                    await stream.wait_for_more()
        except TimeoutError:
            logger.warning(
                "stream %s: cancel requested, its worker has not ended it yet", stream_id
            )
            with contextlib.suppress(RedisError):
                await self.probe(stream_id)
        finally:
            self.release(mirror)

    # -- following ------------------------------------------------------------------------------
    def follow(self, stream_id: str, base: int, templates: Sequence[Template]) -> Mirror:
        """The mirror of ``stream_id`` (one more reader of it); a new one reads from ``base``."""
        mirror = self._mirrors.get(stream_id)
        if mirror is None or mirror.stream.error is not None:
            log = EventLog(templates, base=base)
            mirror = Mirror(
                LocalStream(stream_id, log),
                self.events_key(stream_id),
                f"{base}-0",
                active_at=time.monotonic(),
            )
            self._mirrors[stream_id] = mirror
            self._changed.set()
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._run(), name="redis hub: reader")
                self._task.add_done_callback(self._ended)
            elif self._in_flight is not None and stream_id not in self._in_flight:
                self._wake()
        else:
            mirror.stream.log.add_templates(templates)
        mirror.refs += 1
        return mirror

    def release(self, mirror: Mirror) -> None:
        """One reader less; the last one out stops the following."""
        mirror.refs -= 1
        if mirror.refs <= 0 and self._mirrors.get(mirror.stream.stream_id) is mirror:
            del self._mirrors[mirror.stream.stream_id]

    async def backfill(self, mirror: Mirror, after: int) -> list[StreamEvent]:
        """Events ``after + 1 …`` up to the mirror's first one, for a reader that
        needs more than the mirror holds."""
        log = EventLog(mirror.stream.log.templates, base=after)
        await self._entries.fill(log, mirror.stream.stream_id, mirror.key, mirror.stream.log.base)
        return log.read(after)

    # -- the shared XREAD ---------------------------------------------------------------------
    def _ended(self, task: asyncio.Task[None]) -> None:
        """The XREAD loop only ends by a bug: say so, and fail its readers rather than
        leave them waiting (the next follow starts a new loop)."""
        if task.cancelled() or task.exception() is None:
            return
        logger.error("redis hub: the reader failed", exc_info=task.exception())
        for mirror in list(self._mirrors.values()):
            self._fail(mirror, HubError("reading the stream failed"))

    async def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        outage_since: float | None = None
        while True:
            following = [mirror for mirror in self._mirrors.values() if mirror.following]
            if not following:
                self._changed.clear()
                await self._changed.wait()
                continue
            by_key = {mirror.key: mirror for mirror in following}
            streams = {mirror.key: mirror.cursor for mirror in following}
            streams[self._wake_key] = self._wake_seen
            self._in_flight = {mirror.stream.stream_id for mirror in following}
            try:
                reply = cast(
                    list[tuple[str, list[Entry]]] | None,
                    await self._client.xread(
                        cast(Any, streams), count=READ_COUNT, block=self._block_ms
                    ),
                )
            except RedisError as error:
                now = time.monotonic()
                if outage_since is None:
                    outage_since = now
                    logger.warning("redis hub: reading from Redis failed: %s", error)
                if now - outage_since > RETRY_S:
                    for mirror in following:
                        self._fail(mirror, HubUnavailable(UNAVAILABLE))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            finally:
                self._in_flight = None
            backoff = BACKOFF_MIN_S
            now = time.monotonic()
            for key, entries in reply or ():
                if key == self._wake_key:
                    self._wake_seen = entries[-1][0]
                    continue
                mirror = by_key[key]
                if self._mirrors.get(mirror.stream.stream_id) is mirror and mirror.following:
                    await self._take(mirror, entries, now)
            if outage_since is not None:
                outage_since = None
                # Redis may have come back empty: then the streams are gone, say so now.
                await self._probe([mirror for mirror in following if mirror.following])
            else:
                idle = [
                    mirror
                    for mirror in following
                    if mirror.following and now - mirror.active_at >= self._keepalive_s
                ]
                if idle:
                    await self._probe(idle)

    async def _take(self, mirror: Mirror, entries: list[Entry], now: float) -> None:
        stream = mirror.stream
        try:
            for entry in entries:
                entry_id, fields = entry
                if "end" in fields:
                    mirror.cursor = entry_id
                    stream.finish()
                    return
                await self._entries.append(stream.log, stream.stream_id, entry)
                mirror.cursor = entry_id
        except HubError as error:
            self._fail(mirror, error)
            return
        except RedisError as error:
            logger.info("stream %s: could not read its templates: %s", stream.stream_id, error)
        finally:
            mirror.active_at = now
            stream.wake()

    async def _probe(self, mirrors: list[Mirror]) -> None:
        statuses = await asyncio.gather(
            *(self.probe(mirror.stream.stream_id) for mirror in mirrors), return_exceptions=True
        )
        now = time.monotonic()
        for mirror, status in zip(mirrors, statuses, strict=True):
            mirror.active_at = now
            if status == "missing":
                self._fail(mirror, gone(mirror.stream.stream_id))

    async def probe(self, stream_id: str) -> str:
        """'missing', 'done', 'live' or 'orphaned' (then finished here with its error ending)."""
        status = cast(
            str,
            await self._batch.script(
                self._scripts.probe, self._prefix, stream_id, *self._probe_args
            ),
        )
        if status == "orphaned":
            logger.warning("stream %s: its worker is gone; ended it with an error", stream_id)
        return status

    def _fail(self, mirror: Mirror, error: HubError) -> None:
        mirror.stream.fail(error)
        if self._mirrors.get(mirror.stream.stream_id) is mirror:
            del self._mirrors[mirror.stream.stream_id]

    def _wake(self) -> None:
        if self._waking:
            return
        self._waking = True

        async def wake() -> None:
            try:
                await self._batch.script(
                    self._scripts.wake, self._prefix, self._worker_id, _WAKE_TTL_MS
                )
            except RedisError as error:  # the XREAD times out by itself
                logger.info("redis hub: could not wake the reader: %s", error)
            finally:
                self._waking = False

        self._spawn(wake())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self) -> None:
        self._closed = True
        await cancel_and_wait(task for task in (self._task, *self._background) if task is not None)

"""The in-process hub: the embedded default, for one worker.

Each stream keeps its events in a list (index = seq - 1) and one shared
future that every waiting subscriber awaits; appending resolves it, so a
burst of events wakes each subscriber once and it takes the whole burst as
one batch (one socket write instead of one per event).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from backend.hub.base import (
    EndReason,
    Event,
    Generation,
    HubFull,
    StreamEvent,
    StreamNotFound,
    expand,
)

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Stream:
    stream_id: str
    owner: str | None
    background: bool = False  # runs on without readers
    # Payloads only (seq = index + 1): a list of str while live, a tuple once
    # finished. Kept for stream_ttl_s, so they must cost the cyclic GC nothing:
    # a tuple holding only str is untracked after one pass, while one small
    # object per event made full collections a quarter of the server's CPU.
    events: list[Event] | tuple[Event, ...] = field(default_factory=list)
    size_bytes: int = 0
    done: bool = False
    subscribers: int = 0
    end_reason: EndReason | None = None
    end_message: str = ""
    task: asyncio.Task[None] | None = None
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    grace_timer: asyncio.TimerHandle | None = None
    expiry_timer: asyncio.TimerHandle | None = None
    finished_at: float = 0.0

    def wait_for_more(self) -> asyncio.Future[None]:
        # One future per waiting reader: a reader that goes away cancels only
        # its own, so no shield is needed.
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return waiter

    def wake(self) -> None:
        waiters, self.waiters = self.waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class MemorySubscription:
    """One reader's cursor over a stream; iterate for batches, ``aclose`` to detach."""

    def __init__(self, hub: MemoryHub, stream: _Stream, after: int) -> None:
        self._hub = hub
        self._stream = stream
        self._cursor = after
        self._closed = False

    def __aiter__(self) -> AsyncIterator[Sequence[StreamEvent]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[Sequence[StreamEvent]]:
        stream = self._stream
        keepalive_s = self._hub.keepalive_s
        loop = asyncio.get_running_loop()
        self._hub._ensure_ticker()
        last_sent = loop.time()
        try:
            while True:
                events = stream.events
                if self._cursor < len(events):
                    start = self._cursor
                    self._cursor = len(events)
                    yield [
                        StreamEvent(seq, name, data)
                        for seq, (name, data) in enumerate(events[start:], start + 1)
                    ]
                    last_sent = loop.time()
                    continue
                if stream.done:
                    return
                if loop.time() - last_sent >= keepalive_s:
                    yield ()
                    last_sent = loop.time()
                    continue
                # No timer per wait (that cost 10–19% of CPU at 20 tokens/s): the
                # hub's ticker wakes idle readers now and then, and the check
                # above turns a long enough silence into a keep-alive.
                await stream.wait_for_more()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._hub._detach(self._stream)


class MemoryHub:
    """Streams in this process's memory, bounded in count and bytes."""

    kind = "memory"

    def __init__(
        self,
        *,
        keepalive_s: float,
        stream_ttl_s: float,
        resume_grace_s: float,
        max_streams: int,
        max_buffered_bytes: int,
        on_end: Callable[[EndReason], None] | None = None,
    ) -> None:
        self.keepalive_s = keepalive_s
        self._ttl_s = stream_ttl_s
        self._grace_s = resume_grace_s
        self._max_streams = max_streams
        self._max_bytes = max_buffered_bytes
        self._on_end = on_end
        self._streams: dict[str, _Stream] = {}
        self._buffered_bytes = 0
        self._ticker: asyncio.Task[None] | None = None

    # -- bookkeeping visible to metrics and tests -------------------------------------------
    @property
    def live_streams(self) -> int:
        return sum(1 for stream in self._streams.values() if not stream.done)

    @property
    def stored_streams(self) -> int:
        return len(self._streams)

    @property
    def buffered_bytes(self) -> int:
        return self._buffered_bytes

    # -- protocol -------------------------------------------------------------------------
    async def start(
        self,
        stream_id: str,
        owner: str | None,
        generation: Generation,
        *,
        background: bool = False,
    ) -> None:
        self._make_room()
        if stream_id in self._streams:
            raise ValueError(f"stream id {stream_id} already exists")
        stream = _Stream(stream_id=stream_id, owner=owner, background=background)
        self._streams[stream_id] = stream
        stream.task = asyncio.create_task(
            self._produce(stream, generation), name=f"generation {stream_id}"
        )
        # A task cancelled before its first step never runs its body (no
        # except/finally), e.g. a cancel or shutdown right after start: end
        # the stream from outside then, or its readers would wait forever.
        stream.task.add_done_callback(lambda _task: self._settle(stream, generation))

    async def subscribe(self, stream_id: str, after: int, owner: str | None) -> MemorySubscription:
        stream = self._streams.get(stream_id)
        if stream is None or stream.owner != owner:
            # A foreign stream looks exactly like a missing one: ids are not an oracle.
            raise StreamNotFound(f"No stream {stream_id!r} (unknown, expired, or not yours).")
        stream.subscribers += 1
        if stream.grace_timer is not None:
            stream.grace_timer.cancel()
            stream.grace_timer = None
        # Not clamped: a reader ahead of the stream waits for the events after
        # the one it claims, and gets nothing if the stream ends first.
        return MemorySubscription(self, stream, max(after, 0))

    async def cancel(self, stream_id: str, owner: str | None) -> bool:
        stream = self._owned_stream(stream_id, owner)
        if stream.done:
            return False
        await self._stop(stream, "cancelled", "cancelled by request")
        return True

    async def delete(self, stream_id: str, owner: str | None) -> None:
        stream = self._owned_stream(stream_id, owner)
        await self._stop(stream, "cancelled", "deleted by request")
        if self._streams.get(stream_id) is stream:
            self._drop(stream)

    def _owned_stream(self, stream_id: str, owner: str | None) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.owner != owner:
            raise StreamNotFound(f"No stream {stream_id!r} (unknown, expired, or not yours).")
        return stream

    async def readiness(self) -> str | None:
        return None  # in-process: nothing to reach

    async def drain(self) -> None:
        # Readers here follow the in-memory events, which outlive the tasks.
        await self.aclose()

    async def aclose(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        tasks = []
        for stream in list(self._streams.values()):
            if stream.task is not None and not stream.task.done():
                if stream.end_reason is None:
                    stream.end_reason = "shutdown"
                    stream.end_message = "server shutting down"
                stream.task.cancel()
                tasks.append(stream.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for stream in self._streams.values():
            for timer in (stream.grace_timer, stream.expiry_timer):
                if timer is not None:
                    timer.cancel()

    # -- internals ------------------------------------------------------------------------
    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.create_task(self._tick(), name="memory hub keep-alive ticker")

    async def _tick(self) -> None:
        """Wake idle readers a few times per keep-alive interval (one timer per hub)."""
        period = min(1.0, self.keepalive_s / 4)
        while True:
            await asyncio.sleep(period)
            for stream in list(self._streams.values()):
                if stream.waiters:
                    stream.wake()

    def _append(self, stream: _Stream, event: Event) -> None:
        assert isinstance(stream.events, list), "append to a finished stream"
        stream.events.append(event)
        # Bytes as written (UTF-8), not characters: the bound is on memory.
        data = event[1]
        size = len(event[0]) + (
            len(data) if data.isascii() else len(data.encode("utf-8", "replace"))
        )
        stream.size_bytes += size
        self._buffered_bytes += size
        stream.wake()

    async def _produce(self, stream: _Stream, generation: Generation) -> None:
        try:
            templates = generation.templates
            async for item in generation.events():
                self._append(stream, expand(templates, item))
        except asyncio.CancelledError:
            reason = stream.end_reason or "shutdown"
            self._close_early(stream, generation, reason, stream.end_message or reason)
        except Exception as error:  # the generation already turns engine faults into events
            logger.exception("generation %s failed", stream.stream_id)
            self._close_early(stream, generation, "error", str(error) or type(error).__name__)
        finally:
            self._finish(stream)

    def _settle(self, stream: _Stream, generation: Generation) -> None:
        if not stream.done:  # cancelled before it ever ran
            reason = stream.end_reason or "shutdown"
            self._close_early(stream, generation, reason, stream.end_message or reason)
            self._finish(stream)

    def _close_early(
        self, stream: _Stream, generation: Generation, reason: EndReason, message: str
    ) -> None:
        for event in generation.closing_events(reason, message):
            self._append(stream, event)
        if self._on_end is not None:
            self._on_end(reason)

    def _finish(self, stream: _Stream) -> None:
        stream.done = True
        stream.events = tuple(stream.events)
        stream.task = None  # a finished task keeps its coroutine frame alive
        stream.finished_at = time.monotonic()
        stream.wake()
        if stream.grace_timer is not None:
            stream.grace_timer.cancel()
            stream.grace_timer = None
        stream.expiry_timer = asyncio.get_running_loop().call_later(
            self._ttl_s, self._expire, stream
        )

    async def _stop(self, stream: _Stream, reason: EndReason, message: str) -> None:
        task = stream.task
        if task is None or task.done():
            return
        if stream.end_reason is None:  # the first reason given wins
            stream.end_reason = reason
            stream.end_message = message
        task.cancel()
        # Wait so the caller observes a finished stream (closing events appended).
        # ``wait`` neither re-raises the task's own cancellation nor swallows the
        # caller's (``suppress(CancelledError)`` around a shield would do both).
        await asyncio.wait((task,))

    def _detach(self, stream: _Stream) -> None:
        stream.subscribers -= 1
        if stream.subscribers > 0 or stream.done or stream.background:
            return
        if self._grace_s == 0:
            self._abandon(stream)
        else:
            stream.grace_timer = asyncio.get_running_loop().call_later(
                self._grace_s, self._abandon, stream
            )

    def _abandon(self, stream: _Stream) -> None:
        stream.grace_timer = None
        if (
            stream.subscribers == 0
            and not stream.done
            and stream.task is not None
            and stream.end_reason is None
        ):
            stream.end_reason = "abandoned"
            stream.end_message = "no subscriber left"
            stream.task.cancel()

    def _expire(self, stream: _Stream) -> None:
        if self._streams.get(stream.stream_id) is stream:
            self._drop(stream)

    def _drop(self, stream: _Stream) -> None:
        del self._streams[stream.stream_id]
        self._buffered_bytes -= stream.size_bytes
        if stream.expiry_timer is not None:
            stream.expiry_timer.cancel()

    def _make_room(self) -> None:
        """Evict finished streams, oldest first, before refusing a new one."""
        if len(self._streams) < self._max_streams and self._buffered_bytes < self._max_bytes:
            return
        finished = sorted(
            (stream for stream in self._streams.values() if stream.done),
            key=lambda stream: stream.finished_at,
        )
        for stream in finished:
            self._drop(stream)
            if len(self._streams) < self._max_streams and self._buffered_bytes < self._max_bytes:
                return
        raise HubFull(
            f"Server at capacity: {self.live_streams} live streams, "
            f"{self._buffered_bytes} bytes buffered. Retry shortly."
        )

"""The in-process hub: the embedded default, for one worker.

Each stream is a ``LocalStream`` (its events in a compact ``EventLog``) fed
by the shared runner; readers are ``LocalSubscription`` cursors into it.

Memory is bounded at all times, not only at admission
(``max_buffered_bytes`` counts the bytes the logs store):
- a new stream first evicts finished streams, oldest first, and is refused
  (``HubFull``, 503) if the bounds still do not allow it;
- while generations run, every produced event that takes the total past the
  bound evicts finished streams, oldest first, and if that is not enough,
  ends the newest growing streams (as many as it takes for what they hold to
  cover the excess) with the generation's error ending (an in-band error
  event, then the dialect's terminal event); once ended they are evicted in
  turn. The total can pass the bound only by what the streams being ended
  add before their cancellation lands, and their closing events.
An evicted stream answers 404 to a resume; readers already attached keep
reading it (they hold it), and its memory goes with the last of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from backend.hub.base import EndReason, Generation, HubFull, StreamNotFound
from backend.hub.local import LocalStream, LocalSubscription, Ticker
from backend.hub.log import EventLog
from backend.hub.runner import BOUND_MESSAGE, Run, Runner

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Stream(Run):
    grace_timer: asyncio.TimerHandle | None = None
    expiry_timer: asyncio.TimerHandle | None = None
    bound_bytes: int = 0  # what it held when the byte bound ended it


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
        flush_window_s: float = 0.0,
    ) -> None:
        self.keepalive_s = keepalive_s
        self._ttl_s = stream_ttl_s
        self._grace_s = resume_grace_s
        self._max_streams = max_streams
        self._max_bytes = max_buffered_bytes
        # Every stored stream in start order, and the finished ones in finish
        # order (the eviction order).
        self._streams: dict[str, _Stream] = {}
        self._finished: dict[str, _Stream] = {}
        self._buffered_bytes = 0
        # Bytes held by the streams the bound is ending (evicted once they have).
        self._ending_bytes = 0
        self._ticker = Ticker(keepalive_s, flush_window_s)
        self._runner: Runner[_Stream] = Runner(
            on_append=self._appended, on_finish=self._finished_run, on_end=on_end
        )

    # -- bookkeeping visible to metrics and tests -------------------------------------------
    @property
    def live_streams(self) -> int:
        return len(self._streams) - len(self._finished)

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
        if stream_id in self._streams:
            raise ValueError(f"stream id {stream_id} already exists")
        self._make_room()
        stream = _Stream(
            LocalStream(stream_id, EventLog()), generation, owner, background=background
        )
        self._streams[stream_id] = stream
        self._runner.launch(stream)

    async def subscribe(self, stream_id: str, after: int, owner: str | None) -> LocalSubscription:
        stream = self._owned(stream_id, owner)
        if stream.grace_timer is not None:
            stream.grace_timer.cancel()
            stream.grace_timer = None
        # Not clamped: a reader ahead of the stream waits for the events after
        # the one it claims, and gets nothing if the stream ends first.
        return LocalSubscription(
            stream.stream,
            max(after, 0),
            ticker=self._ticker,
            on_close=lambda: self._detached(stream),
        )

    async def cancel(self, stream_id: str, owner: str | None) -> bool:
        stream = self._owned(stream_id, owner)
        if stream.stream.done:
            return False
        await self._runner.stop_and_wait(stream, "cancelled", "cancelled by request")
        return True

    async def delete(self, stream_id: str, owner: str | None) -> None:
        stream = self._owned(stream_id, owner)
        await self._runner.stop_and_wait(stream, "cancelled", "deleted by request")
        if self._streams.get(stream_id) is stream:
            self._drop(stream)

    async def readiness(self) -> str | None:
        return None  # in-process: nothing to reach

    async def drain(self) -> None:
        # Readers here follow the in-memory events, which outlive the tasks.
        await self.aclose()

    async def aclose(self) -> None:
        self._ticker.close()
        tasks = []
        for stream in list(self._streams.values()):
            if stream.task is not None and not stream.task.done():
                tasks.append(stream.task)
                self._runner.stop(stream, "shutdown", "server shutting down")
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for stream in self._streams.values():
            for timer in (stream.grace_timer, stream.expiry_timer):
                if timer is not None:
                    timer.cancel()

    # -- internals ------------------------------------------------------------------------
    def _owned(self, stream_id: str, owner: str | None) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None or stream.owner != owner:
            raise StreamNotFound.for_id(stream_id)
        return stream

    def _appended(self, stream: _Stream, size: int, produced: bool) -> None:
        self._buffered_bytes += size
        if produced and self._buffered_bytes > self._max_bytes:
            self._enforce_bound()

    def _enforce_bound(self) -> None:
        """Over the byte bound while generating: evict finished streams, oldest
        first; if that is not enough, end the newest growing streams, as many as
        it takes for what they hold to cover the excess (they go once ended)."""
        while self._finished and self._buffered_bytes > self._max_bytes:
            self._drop(next(iter(self._finished.values())))
        for stream in reversed(self._streams.values()):
            if self._buffered_bytes - self._ending_bytes <= self._max_bytes:
                return
            if stream.stream.done or stream.stopping:
                continue
            logger.warning(
                "stream %s ended: %d bytes buffered, over max_buffered_bytes %d",
                stream.stream_id,
                self._buffered_bytes,
                self._max_bytes,
            )
            stream.bound_bytes = stream.stream.log.size
            self._ending_bytes += stream.bound_bytes
            self._runner.stop(stream, "error", BOUND_MESSAGE)

    def _finished_run(self, stream: _Stream) -> None:
        self._ending_bytes -= stream.bound_bytes
        stream.bound_bytes = 0
        if self._streams.get(stream.stream_id) is not stream:
            return  # deleted or evicted while it ended
        self._finished[stream.stream_id] = stream
        if stream.grace_timer is not None:
            stream.grace_timer.cancel()
            stream.grace_timer = None
        stream.expiry_timer = asyncio.get_running_loop().call_later(
            self._ttl_s, self._expire, stream
        )

    def _detached(self, stream: _Stream) -> None:
        if stream.stream.subscribers > 0 or stream.stream.done or stream.background:
            return
        if self._grace_s == 0:
            self._abandon(stream)
        else:
            stream.grace_timer = asyncio.get_running_loop().call_later(
                self._grace_s, self._abandon, stream
            )

    def _abandon(self, stream: _Stream) -> None:
        stream.grace_timer = None
        if stream.stream.subscribers == 0 and not stream.stream.done:
            self._runner.stop(stream, "abandoned", "no subscriber left")

    def _expire(self, stream: _Stream) -> None:
        if self._streams.get(stream.stream_id) is stream:
            self._drop(stream)

    def _drop(self, stream: _Stream) -> None:
        del self._streams[stream.stream_id]
        self._finished.pop(stream.stream_id, None)
        self._buffered_bytes -= stream.stream.log.size
        for timer in (stream.expiry_timer, stream.grace_timer):
            if timer is not None:
                timer.cancel()

    def _make_room(self) -> None:
        """Evict finished streams, oldest first, before refusing a new one."""
        while self._finished and (
            len(self._streams) >= self._max_streams or self._buffered_bytes >= self._max_bytes
        ):
            self._drop(next(iter(self._finished.values())))
        if len(self._streams) >= self._max_streams or self._buffered_bytes >= self._max_bytes:
            raise HubFull(
                f"Server at capacity: {self.live_streams} live streams, "
                f"{self._buffered_bytes} bytes buffered. Retry shortly."
            )

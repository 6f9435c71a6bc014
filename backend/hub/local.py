"""Streams held in this process, and the readers that follow them.

Both hubs serve readers the same way from an ``EventLog`` in memory: the
memory hub for every stream, the Redis hub for the streams its worker
produces and for the ones it mirrors from Redis for its own readers.

Each stream has one list of waiter futures; appending resolves them all, so
a burst of events wakes each reader once and it takes the whole burst as one
batch (one socket write instead of one per event). A reader only ever awaits
its own future: a disconnect cancels it cleanly, never inside a Redis call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from backend.hub.base import HubError, StreamEvent
from backend.hub.log import EventLog


@dataclass(eq=False, slots=True)
class LocalStream:
    """A stream's events in this process and the readers waiting for more."""

    stream_id: str
    log: EventLog
    done: bool = False
    # Set when the events can no longer come (e.g. the store lost the stream):
    # readers raise it once they have read what there is.
    error: HubError | None = None
    subscribers: int = 0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)

    def wait_for_more(self) -> asyncio.Future[None]:
        # One future per waiting reader: a reader that goes away cancels only
        # its own, so no shield is needed.
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return waiter

    def has_waiting_reader(self) -> bool:
        """Whether a reader waits for more; drops the waits of readers that went away
        (a departed reader's wait is cancelled, and only a wake would drop it)."""
        waiters = self.waiters
        if waiters and any(waiter.done() for waiter in waiters):
            waiters = self.waiters = [waiter for waiter in waiters if not waiter.done()]
        return bool(waiters)

    def wake(self) -> None:
        if self.waiters:
            waiters, self.waiters = self.waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def finish(self) -> None:
        self.done = True
        self.log.freeze()
        self.wake()

    def fail(self, error: HubError) -> None:
        if not self.done and self.error is None:
            self.error = error
            self.wake()


class Ticker:
    """The hub's clock for its readers: keep-alives, and the flush window.

    Keep-alive: wakes idle readers when their keep-alive is due, one timer per
    hub, not one per wait (a timer per wait cost a tenth of the CPU at 20
    tokens/s). A waiting reader says when its keep-alive falls due; every
    ``period`` the ticker wakes the streams with a reader due by then, and
    only those, so an idle stream is woken once per keep-alive interval (not
    once per period), and a busy one at most once per interval, for nothing.

    Flush window (``flush_window_s``, 0 = off): a reader with events to write
    less than a window after its last write waits for the next flush, one
    timer for all such readers, up to a window away, so what comes meanwhile
    goes out in the same write.
    """

    def __init__(self, keepalive_s: float, flush_window_s: float = 0.0) -> None:
        self.keepalive_s = keepalive_s
        self.flush_window_s = flush_window_s
        self._period = min(1.0, keepalive_s / 4)
        # The earliest keep-alive due among each stream's waiting readers (loop time).
        self._due: dict[LocalStream, float] = {}
        self._task: asyncio.Task[None] | None = None
        # Readers waiting for the next flush, each on its own future (a shared one
        # would be cancelled for all by one reader's disconnect).
        self._flushing: list[asyncio.Future[None]] = []

    def next_flush(self) -> asyncio.Future[None]:
        loop = asyncio.get_running_loop()
        if not self._flushing:
            loop.call_later(self.flush_window_s, self._flush)
        waiter = loop.create_future()
        self._flushing.append(waiter)
        return waiter

    def _flush(self) -> None:
        waiters, self._flushing = self._flushing, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def watch(self, stream: LocalStream, due: float) -> None:
        known = self._due.get(stream)
        if known is None or due < known:
            self._due[stream] = due
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._tick(), name="hub keep-alive ticker")

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while self._due:
            await asyncio.sleep(self._period)
            now = loop.time()
            # A stream whose readers all went away (or are busy writing: they ask
            # again before they next wait) needs no ping: drop it now rather than
            # when its keep-alive falls due, so an idle hub holds no ticker.
            due = [
                stream
                for stream, at in self._due.items()
                if at <= now or not stream.has_waiting_reader()
            ]
            for stream in due:
                del self._due[stream]
                stream.wake()
        # No reader waits: the next one to wait starts a ticker again (watch), so an
        # idle hub holds no task for it.
        self._task = None

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


class LocalSubscription:
    """One reader's cursor over a ``LocalStream``; iterate for batches, ``aclose`` to detach.

    ``prefix``: events before the log's first one that this reader still needs
    (a Redis mirror started further on), yielded first.
    """

    def __init__(
        self,
        stream: LocalStream,
        after: int,
        *,
        ticker: Ticker,
        on_close: Callable[[], None],
        prefix: Sequence[StreamEvent] = (),
    ) -> None:
        self._stream = stream
        self._cursor = max(after, stream.log.base)
        self._ticker = ticker
        self._on_close = on_close
        self._prefix = prefix
        self._closed = False
        stream.subscribers += 1

    def __aiter__(self) -> AsyncIterator[Sequence[StreamEvent]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[Sequence[StreamEvent]]:
        stream = self._stream
        ticker = self._ticker
        keepalive_s = ticker.keepalive_s
        window = ticker.flush_window_s
        loop = asyncio.get_running_loop()
        try:
            if self._prefix:
                prefix, self._prefix = self._prefix, ()
                yield prefix
            last_sent = loop.time()
            last_write = -window  # the first events go out at once
            gathered = False
            while True:
                log = stream.log
                if self._cursor < log.last_seq:
                    if (
                        window
                        and not gathered
                        and not stream.done
                        and loop.time() - last_write < window
                    ):
                        # Written less than a window ago: let more events
                        # gather, to go out with these in one write.
                        gathered = True
                        await ticker.next_flush()
                        continue
                    gathered = False
                    batch = log.read(self._cursor)
                    self._cursor = log.last_seq
                    yield batch
                    last_sent = last_write = loop.time()
                    continue
                if stream.done:
                    return
                if stream.error is not None:
                    raise stream.error
                if loop.time() - last_sent >= keepalive_s:
                    yield ()
                    last_sent = loop.time()
                    continue
                # The ticker wakes this reader when its keep-alive is due (or a
                # little later); the check above turns the silence into a ping.
                ticker.watch(stream, last_sent + keepalive_s)
                await stream.wait_for_more()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._stream.subscribers -= 1
            self._on_close()

"""Readers of in-process streams: keep-alive for idle readers, woken only when it falls due."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from backend.hub.local import LocalStream, LocalSubscription, Ticker
from backend.hub.log import EventLog

KEEPALIVE_S = 0.2


@dataclass(eq=False, slots=True)
class CountedStream(LocalStream):
    """Counts how often a reader goes to sleep on it (each sleep ends in one wake-up)."""

    waits: int = 0

    def wait_for_more(self) -> asyncio.Future[None]:
        self.waits += 1
        return LocalStream.wait_for_more(self)


async def batch_sizes(
    subscription: LocalSubscription,
    ticker: Ticker,
    produce: Callable[[], Coroutine[Any, Any, None]],
) -> list[int]:
    """Run ``produce`` beside the reader; the size of each batch it got, to the end."""
    producer = asyncio.create_task(produce())
    sizes: list[int] = []
    try:
        async for batch in subscription:
            sizes.append(len(batch))
    finally:
        ticker.close()
        await producer
    return sizes


async def test_an_idle_reader_wakes_once_per_keepalive_with_a_ping() -> None:
    ticker = Ticker(KEEPALIVE_S)
    stream = CountedStream("idle", EventLog())
    subscription = LocalSubscription(stream, 0, ticker=ticker, on_close=lambda: None)
    loop = asyncio.get_running_loop()
    pings: list[float] = []
    started = loop.time()
    try:
        async for batch in subscription:
            assert batch == ()
            pings.append(loop.time())
            if len(pings) == 4:
                break
    finally:
        ticker.close()
    # Every sleep ended in a ping: the ticker (checking every KEEPALIVE_S / 4)
    # woke the reader only when its keep-alive was due, not at each check.
    assert stream.waits == len(pings)
    gaps = [later - earlier for earlier, later in zip([started, *pings], pings, strict=False)]
    assert all(gap >= KEEPALIVE_S for gap in gaps)


async def test_a_busy_reader_gets_no_ping_and_events_wake_it() -> None:
    ticker = Ticker(1.0)  # far longer than the gaps between events
    log = EventLog()
    stream = LocalStream("busy", log)
    subscription = LocalSubscription(stream, 0, ticker=ticker, on_close=lambda: None)

    async def produce() -> None:
        for _ in range(12):
            await asyncio.sleep(0.02)
            log.append_event("", '{"n":1}')
            stream.wake()
        stream.finish()

    batches = await batch_sizes(subscription, ticker, produce)
    assert 0 not in batches  # no keep-alive while events flow
    assert sum(batches) == 12


async def _batch_sizes(window_s: float, events: int, gap_s: float) -> tuple[list[int], float]:
    """Batch sizes a reader gets from a stream appended every ``gap_s``, and how long
    after the stream finished the last one came."""
    ticker = Ticker(10.0, flush_window_s=window_s)
    log = EventLog()
    stream = LocalStream("fast", log)
    subscription = LocalSubscription(stream, 0, ticker=ticker, on_close=lambda: None)
    loop = asyncio.get_running_loop()
    finished_at = 0.0

    async def produce() -> None:
        nonlocal finished_at
        for _ in range(events):
            log.append_event("", '{"n":1}')
            stream.wake()
            await asyncio.sleep(gap_s)
        stream.finish()
        finished_at = loop.time()

    sizes = await batch_sizes(subscription, ticker, produce)
    return sizes, loop.time() - finished_at


async def test_a_flush_window_gathers_a_fast_streams_events_into_fewer_writes() -> None:
    sizes, _ = await _batch_sizes(0.0, 20, 0.005)
    assert sum(sizes) == 20
    gathered, tail = await _batch_sizes(0.1, 20, 0.005)
    assert sum(gathered) == 20
    assert gathered[0] == 1  # the first event goes out at once
    assert len(gathered) < len(sizes)
    assert max(gathered) > 1
    assert tail < 0.1 + 0.05  # held back at most one window, then out


async def test_a_flush_window_leaves_a_slow_stream_alone() -> None:
    sizes, _ = await _batch_sizes(0.01, 5, 0.05)
    assert sizes == [1, 1, 1, 1, 1]


async def test_the_ticker_stops_when_no_reader_waits_and_starts_again() -> None:
    ticker = Ticker(KEEPALIVE_S)

    def tickers() -> list[asyncio.Task[object]]:
        return [task for task in asyncio.all_tasks() if task.get_name() == "hub keep-alive ticker"]

    async def one_ping(waiting: asyncio.Event) -> None:
        stream = LocalStream("idle", EventLog())
        subscription = LocalSubscription(stream, 0, ticker=ticker, on_close=lambda: None)
        batches = aiter(subscription)
        first = asyncio.ensure_future(anext(batches))
        await asyncio.sleep(0)  # the reader goes to sleep: it asks the ticker for a ping
        waiting.set()
        assert await first == ()  # the keep-alive: the ticker woke the reader

    try:
        for _ in range(2):  # and a reader that comes later gets a ticker again
            waiting = asyncio.Event()
            reader = asyncio.create_task(one_ping(waiting))
            await waiting.wait()
            (task,) = tickers()
            await asyncio.wait_for(reader, 10)
            await asyncio.wait_for(task, 10)  # nobody waits any more: it ended by itself
            assert not tickers()
    finally:
        ticker.close()


async def test_a_reader_that_leaves_does_not_keep_the_ticker_until_its_ping_is_due() -> None:
    # The reader's keep-alive falls due long after it has gone; the ticker, checking
    # every second, finds nobody waiting and ends at its next check instead.
    ticker = Ticker(60.0)
    stream = LocalStream("left", EventLog())
    subscription = LocalSubscription(stream, 0, ticker=ticker, on_close=lambda: None)
    batches = aiter(subscription)
    reader = asyncio.ensure_future(anext(batches))
    await asyncio.sleep(0)  # the reader waits, its ping due in a minute
    (task,) = [task for task in asyncio.all_tasks() if task.get_name() == "hub keep-alive ticker"]
    reader.cancel()  # the client went away
    try:
        await asyncio.wait_for(asyncio.shield(task), 10)  # a minute before the ping was due
        assert stream.waiters == []  # the departed reader's wait is dropped too
    finally:
        ticker.close()

"""Async-iterator plumbing for the UI: ``coalesce`` (batch updates), ``merge`` (fan-in)
and ``chain`` (one source after the other).

``coalesce`` batches a fast stream into updates at most every ``interval_s``.
Why: every Gradio yield re-sends and re-diffs the whole chat, so its cost
grows with the history; one yield per token makes a long chat CPU-bound.
The first item passes at once (time to first token stays honest), later
items wait at most ``interval_s``; a timer flushes what is pending even when
the source goes quiet, so the tail of an answer is never held back.

A producer task reads the source so that waiting for the flush deadline never
cancels a read in flight (cancelling ``__anext__`` of an httpx stream would
close the connection). Closing the batches iterator cancels the producer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterable
from typing import TypeVar

__all__ = ["chain", "coalesce", "merge"]

T = TypeVar("T")

_END = object()
_TICK = object()  # the flush deadline passed


async def coalesce(source: AsyncIterable[T], interval_s: float) -> AsyncGenerator[list[T], None]:
    """Yield non-empty lists of consecutive items; ``interval_s <= 0`` yields one per item."""
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for item in source:
                queue.put_nowait(item)
        except BaseException as exc:  # handed over: re-raised in the consumer
            queue.put_nowait(_Failure(exc))
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            queue.put_nowait(_END)

    producer = asyncio.create_task(pump())
    last_flush = float("-inf")
    pending: list[T] = []
    try:
        while True:
            timeout: float | None = None
            if pending:
                timeout = max(0.0, last_flush + interval_s - time.perf_counter())
            try:
                got = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                got = _TICK
            finished = got is _END or isinstance(got, _Failure)
            if got is not _TICK and not finished:
                pending.append(got)  # type: ignore[arg-type]
            now = time.perf_counter()
            if pending and (finished or got is _TICK or now - last_flush >= interval_s):
                batch, pending = pending, []
                last_flush = now
                yield batch
            if isinstance(got, _Failure):
                raise got.exc
            if finished:
                return
    finally:
        if not producer.done():
            producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def merge(*sources: AsyncIterable[T]) -> AsyncGenerator[T, None]:
    """Items of all sources as they come (Compare's two panes on one update loop).

    One task per source; an exception in a source is re-raised here, closing
    this iterator cancels every source still running.
    """
    queue: asyncio.Queue[object] = asyncio.Queue()

    async def pump(source: AsyncIterable[T]) -> None:
        try:
            async for item in source:
                queue.put_nowait(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            queue.put_nowait(_Failure(exc))
        else:
            queue.put_nowait(_END)

    tasks = [asyncio.create_task(pump(source)) for source in sources]
    running = len(tasks)
    try:
        while running:
            got = await queue.get()
            if got is _END:
                running -= 1
            elif isinstance(got, _Failure):
                raise got.exc
            else:
                yield got  # type: ignore[misc]
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def chain(*sources: AsyncIterable[T]) -> AsyncGenerator[T, None]:
    """Items of each source in turn (Compare run one pane after the other)."""
    for source in sources:
        async for item in source:
            yield item

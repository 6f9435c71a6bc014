"""ui/gradio_ui/streams.py: coalesce keeps every item in order, merge fans in, chain runs
sources in turn; closing cancels the sources."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from ui.gradio_ui.streams import chain, coalesce, merge


async def numbers(n: int, *, pause: bool = False) -> AsyncIterator[int]:
    for i in range(n):
        if pause:
            await asyncio.sleep(0)
        yield i


async def test_coalesce_keeps_every_item_in_order() -> None:
    batches = [batch async for batch in coalesce(numbers(100, pause=True), 0.04)]
    assert [item for batch in batches for item in batch] == list(range(100))
    assert all(batches)


async def test_first_item_passes_alone_then_the_rest_waits_for_the_deadline() -> None:
    # A deadline far away: the first item goes out at once, the others are held until
    # the source ends (the tail is flushed, never lost).
    batches = [batch async for batch in coalesce(numbers(50), 3600.0)]
    assert batches == [[0], list(range(1, 50))]


async def test_zero_interval_forwards_each_item() -> None:
    batches = [batch async for batch in coalesce(numbers(20, pause=True), 0.0)]
    assert batches == [[i] for i in range(20)]


async def test_a_quiet_source_is_flushed_by_the_timer() -> None:
    gate = asyncio.Event()

    async def source() -> AsyncIterator[str]:
        yield "a"
        yield "b"  # held: arrives within the interval after "a"
        await gate.wait()  # the source goes quiet
        yield "c"

    batches = coalesce(source(), 0.01)
    assert await anext(batches) == ["a"]
    assert await anext(batches) == ["b"]  # flushed by the deadline while the source waits
    gate.set()
    assert await anext(batches) == ["c"]
    with pytest.raises(StopAsyncIteration):
        await anext(batches)


async def test_coalesce_reraises_after_delivering_what_came_before() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise ValueError("boom")

    seen: list[int] = []

    async def drain() -> None:
        async for batch in coalesce(failing(), 3600.0):
            seen.extend(batch)

    with pytest.raises(ValueError, match="boom"):
        await drain()
    assert seen == [1]


async def test_closing_coalesce_cancels_the_source() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            i = 0
            while True:
                await asyncio.sleep(0.001)
                yield i
                i += 1
        finally:
            closed.set()

    batches = coalesce(endless(), 0.0)
    await anext(batches)
    await batches.aclose()
    assert closed.is_set()


async def test_merge_interleaves_and_keeps_each_sources_order() -> None:
    async def tagged(tag: str, n: int) -> AsyncIterator[tuple[str, int]]:
        for i in range(n):
            await asyncio.sleep(0)
            yield tag, i

    items = [item async for item in merge(tagged("a", 30), tagged("b", 20))]
    assert [i for tag, i in items if tag == "a"] == list(range(30))
    assert [i for tag, i in items if tag == "b"] == list(range(20))


async def test_merge_reraises_and_cancels_the_other_source() -> None:
    cancelled = asyncio.Event()

    async def endless() -> AsyncIterator[int]:
        try:
            while True:
                await asyncio.sleep(0.001)
                yield 0
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def failing() -> AsyncIterator[int]:
        await asyncio.sleep(0.01)
        raise RuntimeError("pane failed")
        yield 1  # pragma: no cover - makes this an async generator

    async def drain() -> None:
        async for _ in merge(endless(), failing()):
            pass

    with pytest.raises(RuntimeError, match="pane failed"):
        await drain()
    assert cancelled.is_set()


async def test_chain_runs_sources_one_after_the_other() -> None:
    started: list[str] = []

    async def tagged(tag: str, n: int) -> AsyncIterator[str]:
        started.append(tag)
        for i in range(n):
            await asyncio.sleep(0)
            yield f"{tag}{i}"

    items = [item async for item in chain(tagged("a", 3), tagged("b", 2))]
    assert items == ["a0", "a1", "a2", "b0", "b1"]
    assert started == ["a", "b"]

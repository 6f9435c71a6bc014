"""The byte bound holds while streams grow, on both hubs.

Over ``max_buffered_bytes`` the hub evicts finished streams first (oldest
first), then ends the newest growing stream with the generation's error
ending (an in-band error event, then ``[DONE]``). The bound is chosen from
the stored size of the streams, computed here from what the generation
produces (templates once, then each event's variable part).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from backend.hub.base import Fragment, StreamEvent, StreamHub, StreamNotFound
from backend.sse import DONE
from tests.backend.hub.conftest import Hubs
from tests.backend.hub.helpers import (
    Gated,
    Reader,
    assert_contiguous,
    finish_reason,
    generation,
    read_all,
    reference_text,
    text_of,
)

BOUND_SETTING = "SSECHAT_MAX_BUFFERED_BYTES"


async def stored_size(max_tokens: int) -> int:
    """Bytes a whole stream of ``max_tokens`` takes in the store."""
    produced = generation("size", max_tokens=max_tokens)
    size = sum(len(text.encode()) for template in produced.templates for text in template)
    async for item in produced.events():
        if isinstance(item, Fragment):
            size += len(item.part.encode())
        else:
            size += len(item[0].encode()) + len(item[1].encode())
    return size


def ended_by_the_bound(events: Sequence[StreamEvent]) -> bool:
    if len(events) < 2 or events[-1].data != DONE:
        return False
    error = json.loads(events[-2].data).get("error") or {}
    return BOUND_SETTING in str(error.get("message"))


async def test_finished_streams_go_first_then_the_newest_growing_one(hubs: Hubs) -> None:
    size = await stored_size(600)
    # One whole stream fits, two do not (they cross it at about five eighths each).
    bound = size * 5 // 4
    hub = await hubs.make(max_buffered_bytes=bound)
    peer = await hubs.peer(hub)
    await hub.start("finished", None, generation("finished", max_tokens=32))
    await read_all(hub, "finished")
    gate = asyncio.Event()
    older_generation = generation("older", tokens_per_s=200, max_tokens=600)
    await hub.start("older", None, Gated(older_generation, gate))
    older = Reader(await hub.subscribe("older", 0, None))
    # On the other worker for Redis: the bound's stop request crosses workers.
    newer_generation = generation("newer", tokens_per_s=200, max_tokens=600)
    await peer.start("newer", None, Gated(newer_generation, gate))
    newer = Reader(await peer.subscribe("newer", 0, None))
    gate.set()
    second, first = await asyncio.gather(newer.rest(), older.rest())
    # Both together would not fit: the finished one went, then the newer one was ended...
    with pytest.raises(StreamNotFound):
        await hub.subscribe("finished", 0, None)
    assert_contiguous(second)
    assert ended_by_the_bound(second)
    assert (await reference_text(max_tokens=600)).startswith(text_of(second))
    # ...and the older one, which fits alone, ran to its end.
    assert_contiguous(first)
    assert finish_reason(first) in {"stop", "length"}
    assert text_of(first) == await reference_text(max_tokens=600)
    assert await hubs.stored_bytes(hub) <= bound


@pytest.mark.parametrize("tokens_per_s", [300.0, 0.0])
async def test_many_streams_started_at_once_stay_within_the_bound(
    hubs: Hubs, tokens_per_s: float
) -> None:
    count, tokens = 10, 300
    bound = 3 * await stored_size(tokens)
    hub = await hubs.make(max_buffered_bytes=bound)
    ids = [f"s{index}" for index in range(count)]
    gate = asyncio.Event()
    for stream_id in ids:
        produced = generation(stream_id, tokens_per_s=tokens_per_s, max_tokens=tokens)
        await hub.start(stream_id, None, Gated(produced, gate))
    readers = [asyncio.create_task(read_all(hub, stream_id)) for stream_id in ids]
    gate.set()
    peak = await watch_bytes(hubs, hub, readers)
    results = await asyncio.gather(*readers)
    # Within the bound, give or take what the streams being ended add before
    # their cancellation lands, and their closing events (Redis: per write batch).
    assert peak <= bound + count * 1024, (peak, bound)
    ended = [ended_by_the_bound(events) for events in results]
    # Some ran to their end, the rest were ended newest first.
    assert ended == sorted(ended), ended
    if tokens_per_s or hubs.kind == "memory":
        assert 0 < sum(ended) < count, ended
    # (Redis at full speed: the streams end on their worker before Redis holds
    # much of them, and finished ones make room: the bound may need to end none.)
    full = await reference_text(max_tokens=tokens)
    for events, cut in zip(results, ended, strict=True):
        assert_contiguous(events)
        assert events[-1].data == DONE
        if not cut:
            assert text_of(events) == full


async def watch_bytes(
    hubs: Hubs, hub: StreamHub, tasks: list[asyncio.Task[list[StreamEvent]]]
) -> int:
    """The highest byte total seen while ``tasks`` run."""
    peak = 0
    while not all(task.done() for task in tasks):
        peak = max(peak, await hubs.stored_bytes(hub))
        await asyncio.sleep(0.005)
    return peak

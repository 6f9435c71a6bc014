"""The hub contract, run against both hubs (memory and Redis).

Generations are the real ``ChatCompletionGeneration`` over the deterministic
simulated engine, so the expected text comes from the non-streaming path of
the same engine, never from a literal. Resumes and cancels go through
``peer`` (another worker for Redis) wherever the contract allows it.
"""

from __future__ import annotations

import asyncio

import pytest

from backend.hub.base import HubFull, StreamNotFound
from backend.sse import DONE
from tests.backend.hub.conftest import Hubs
from tests.backend.hub.helpers import (
    Reader,
    assert_contiguous,
    collect,
    finish_reason,
    generation,
    read_all,
    reference_text,
    text_of,
)


async def test_events_numbered_from_one_carry_the_whole_answer(hubs: Hubs) -> None:
    hub = await hubs.make()
    await hub.start("s1", None, generation("s1", max_tokens=80))
    events = await read_all(hub, "s1")
    assert_contiguous(events)
    assert events[-1].data == DONE
    assert [event.data for event in events].count(DONE) == 1
    assert text_of(events) == await reference_text(max_tokens=80)
    assert finish_reason(events) == "length"
    assert hubs.ends.reasons == []


async def test_fast_producer_comes_in_batches(hubs: Hubs) -> None:
    hub = await hubs.make()
    await hub.start("s1", None, generation("s1", max_tokens=400))
    await asyncio.sleep(0.3)  # let the producer get ahead of the reader
    batches = [batch async for batch in await hub.subscribe("s1", 0, None) if batch]
    assert len(batches) < sum(len(batch) for batch in batches)
    assert_contiguous([event for batch in batches for event in batch])


@pytest.mark.parametrize("after", [0, 1, 17, -5])
async def test_replay_after_n(hubs: Hubs, after: int) -> None:
    hub = await hubs.make()
    await hub.start("s1", None, generation("s1"))
    full = await read_all(hub, "s1")
    peer = await hubs.peer(hub)
    replay = await read_all(peer, "s1", after)
    assert replay == full[max(after, 0) :]


async def test_replay_from_the_end_or_beyond_yields_nothing(hubs: Hubs) -> None:
    hub = await hubs.make()
    await hub.start("s1", None, generation("s1"))
    full = await read_all(hub, "s1")
    peer = await hubs.peer(hub)
    assert await read_all(peer, "s1", len(full)) == []
    assert await read_all(peer, "s1", len(full) + 100) == []


async def test_resume_mid_stream_continues_live(hubs: Hubs) -> None:
    hub = await hubs.make()
    await hub.start("s1", None, generation("s1", tokens_per_s=200))
    head = await collect(await hub.subscribe("s1", 0, None), limit=5)
    peer = await hubs.peer(hub)
    tail = await read_all(peer, "s1", head[-1].seq)
    joined = head + tail
    assert_contiguous(joined)
    assert text_of(joined) == await reference_text()
    assert joined[-1].data == DONE


async def test_several_subscribers_see_the_same_events(hubs: Hubs) -> None:
    hub = await hubs.make()
    peer = await hubs.peer(hub)
    await hub.start("s1", None, generation("s1", tokens_per_s=150))
    first = asyncio.create_task(read_all(hub, "s1"))
    second = asyncio.create_task(read_all(peer, "s1"))
    await asyncio.sleep(0.1)
    late = asyncio.create_task(read_all(peer, "s1"))
    resumed = asyncio.create_task(read_all(hub, "s1", 3))
    results = await asyncio.gather(first, second, late, resumed)
    full = results[0]
    assert_contiguous(full)
    assert full[-1].data == DONE
    assert results[1] == full
    assert results[2] == full
    assert results[3] == full[3:]
    assert text_of(full) == await reference_text()


async def test_cancel_ends_every_subscriber_with_a_final_chunk_and_done(hubs: Hubs) -> None:
    hub = await hubs.make()
    peer = await hubs.peer(hub)
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=500))
    reader = Reader(await hub.subscribe("s1", 0, None))
    other = asyncio.create_task(read_all(peer, "s1"))
    head = await reader.take(3)
    await peer.cancel("s1", None)
    events = head + await reader.rest()
    assert_contiguous(events)
    assert events[-1].data == DONE
    assert finish_reason(events) == "cancelled"
    assert (await reference_text(max_tokens=500)).startswith(text_of(events))
    assert await other == events
    await hubs.ends.wait_for("cancelled")
    assert hubs.ends.reasons == ["cancelled"]
    # Cancelling a finished stream changes nothing.
    await peer.cancel("s1", None)
    assert await read_all(peer, "s1") == events
    assert hubs.ends.reasons == ["cancelled"]


async def test_cancel_right_after_start(hubs: Hubs) -> None:
    # The generation task has not run a single step yet when it is cancelled.
    hub = await hubs.make()
    await hub.start("s1", None, generation("s1", tokens_per_s=20))
    await hub.cancel("s1", None)
    events = await read_all(hub, "s1")
    assert_contiguous(events)
    assert events[-1].data == DONE
    assert finish_reason(events) == "cancelled"
    assert hubs.ends.reasons == ["cancelled"]


async def test_shutdown_ends_live_streams(hubs: Hubs) -> None:
    hub = await hubs.make()
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=500))
    await hub.start("s2", None, generation("s2", tokens_per_s=20, max_tokens=500))
    head = await collect(await hub.subscribe("s1", 0, None), limit=2)
    await hub.aclose()
    # What the closed hub left behind, read through a live one (for memory: the
    # streams stay readable in the closed hub's memory).
    peer = await hubs.make() if hubs.kind == "redis" else hub
    first, second = await read_all(peer, "s1"), await read_all(peer, "s2")
    assert first[: len(head)] == head
    for events in (first, second):
        assert_contiguous(events)
        assert events[-1].data == DONE
        assert finish_reason(events) == "cancelled"
    assert hubs.ends.reasons == ["shutdown", "shutdown"]


async def test_grace_zero_cancels_when_the_last_subscriber_leaves(hubs: Hubs) -> None:
    hub = await hubs.make(resume_grace_s=0)
    peer = await hubs.peer(hub)
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=500))
    one = await hub.subscribe("s1", 0, None)
    two = await peer.subscribe("s1", 0, None)
    await collect(one, limit=2)  # one reader left: still generating
    head = await collect(two, limit=3)
    await hubs.ends.wait_for("abandoned")
    events = await read_all(peer, "s1")
    assert events[: len(head)] == head
    assert_contiguous(events)
    assert finish_reason(events) == "cancelled"
    assert events[-1].data == DONE
    assert hubs.ends.reasons == ["abandoned"]


async def test_reattaching_within_the_grace_period_keeps_generating(hubs: Hubs) -> None:
    hub = await hubs.make(resume_grace_s=0.5)
    peer = await hubs.peer(hub)
    # About 1.5 s of generation: three grace periods.
    await hub.start("s1", None, generation("s1", tokens_per_s=40, max_tokens=60))
    head = await collect(await hub.subscribe("s1", 0, None), limit=2)
    tail = await read_all(peer, "s1", head[-1].seq)
    events = head + tail
    assert_contiguous(events)
    assert finish_reason(events) == "length"
    assert text_of(events) == await reference_text(max_tokens=60)
    assert hubs.ends.reasons == []


async def test_nobody_back_within_the_grace_period_cancels(hubs: Hubs) -> None:
    hub = await hubs.make(resume_grace_s=0.3)
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=500))
    head = await collect(await hub.subscribe("s1", 0, None), limit=2)
    await hubs.ends.wait_for("abandoned")
    events = await read_all(await hubs.peer(hub), "s1")
    assert events[:2] == head
    assert finish_reason(events) == "cancelled"
    assert events[-1].data == DONE


async def test_a_stream_nobody_subscribed_to_is_not_abandoned(hubs: Hubs) -> None:
    hub = await hubs.make(resume_grace_s=0)
    # About 2 s of generation; nobody attaches for the first 1.5 s (more than
    # the Redis hub's heartbeat period, which also looks for abandoned streams).
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=40))
    await asyncio.sleep(1.5)
    events = await read_all(hub, "s1")
    assert finish_reason(events) == "length"
    assert hubs.ends.reasons == []


async def test_finished_stream_expires_after_ttl(hubs: Hubs) -> None:
    hub = await hubs.make(stream_ttl_s=0.3)
    await hub.start("s1", None, generation("s1"))
    full = await read_all(hub, "s1")
    assert full[-1].data == DONE
    assert await read_all(hub, "s1", 1) == full[1:]  # resumable right after the end
    async with asyncio.timeout(10):
        while True:
            try:
                await (await hub.subscribe("s1", 0, None)).aclose()
            except StreamNotFound:
                break
            await asyncio.sleep(0.05)
    with pytest.raises(StreamNotFound):
        await hub.cancel("s1", None)


async def test_max_streams_refuses_new_streams_and_evicts_finished_ones(hubs: Hubs) -> None:
    hub = await hubs.make(max_streams=2)
    peer = await hubs.peer(hub)
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=500))
    await hub.start("s2", None, generation("s2", tokens_per_s=20, max_tokens=500))
    with pytest.raises(HubFull) as refused:
        await peer.start("s3", None, generation("s3"))
    assert refused.value.status_code == 503
    await hub.cancel("s1", None)
    await peer.start("s3", None, generation("s3"))  # s1 finished: evicted to make room
    with pytest.raises(StreamNotFound):
        await peer.subscribe("s1", 0, None)
    assert finish_reason(await read_all(peer, "s3")) == "length"
    await hub.cancel("s2", None)


async def test_duplicate_stream_id_is_refused(hubs: Hubs) -> None:
    hub = await hubs.make()
    peer = await hubs.peer(hub)
    await hub.start("s1", None, generation("s1", tokens_per_s=50))
    with pytest.raises(ValueError, match="already exists"):
        await peer.start("s1", None, generation("s1"))
    await hub.cancel("s1", None)


async def test_foreign_owner_sees_no_stream(hubs: Hubs) -> None:
    hub = await hubs.make()
    peer = await hubs.peer(hub)
    await hub.start("s1", "owner-a", generation("s1", tokens_per_s=50))
    for owner in (None, "owner-b"):
        with pytest.raises(StreamNotFound):
            await peer.subscribe("s1", 0, owner)
        with pytest.raises(StreamNotFound):
            await peer.cancel("s1", owner)
    for stream_id in ("unknown", "s2"):
        with pytest.raises(StreamNotFound):
            await peer.subscribe(stream_id, 0, "owner-a")
        with pytest.raises(StreamNotFound):
            await peer.cancel(stream_id, "owner-a")
    head = await collect(await peer.subscribe("s1", 0, "owner-a"), limit=1)
    assert head[0].seq == 1
    await peer.cancel("s1", "owner-a")
    assert finish_reason(await collect(await hub.subscribe("s1", 0, "owner-a"))) == "cancelled"


async def test_idle_subscribers_get_empty_batches(hubs: Hubs) -> None:
    hub = await hubs.make(keepalive_s=0.05)
    # Four tokens a second: many keep-alive periods between events.
    await hub.start("s1", None, generation("s1", tokens_per_s=4, max_tokens=3))
    batches = [batch async for batch in await hub.subscribe("s1", 0, None)]
    events = [event for batch in batches for event in batch]
    assert sum(1 for batch in batches if not batch) >= 3
    assert_contiguous(events)
    assert events[-1].data == DONE
    assert text_of(events) == await reference_text(max_tokens=3)


async def test_cancel_says_whether_it_stopped_a_live_generation(hubs: Hubs) -> None:
    hub = await hubs.make()
    await hub.start("c1", None, generation("c1", tokens_per_s=20.0, max_tokens=200))
    assert await hub.cancel("c1", None) is True
    assert await hub.cancel("c1", None) is False  # already finished


async def test_delete_stops_and_forgets_a_stream(hubs: Hubs) -> None:
    hub = await hubs.make()
    await hub.start("d1", "alice", generation("d1", tokens_per_s=20.0, max_tokens=200))
    with pytest.raises(StreamNotFound):
        await hub.delete("d1", "mallory")
    await hub.delete("d1", "alice")
    with pytest.raises(StreamNotFound):
        await hub.subscribe("d1", 0, "alice")
    with pytest.raises(StreamNotFound):
        await hub.delete("d1", "alice")


async def test_a_reader_ahead_of_a_live_stream_gets_only_later_ids(hubs: Hubs) -> None:
    hub = await hubs.make()
    peer = await hubs.peer(hub)
    await hub.start("s1", None, generation("s1", tokens_per_s=40, max_tokens=40))
    # Claims id 10 while the stream has one or two events: waits for 11.
    ahead = await read_all(peer, "s1", 10)
    assert ahead[0].seq == 11
    assert_contiguous(ahead, 11)
    assert ahead[-1].data == DONE
    assert ahead == (await read_all(hub, "s1"))[10:]


async def test_a_reader_ahead_of_a_stream_that_ends_first_gets_nothing(hubs: Hubs) -> None:
    hub = await hubs.make()
    peer = await hubs.peer(hub)
    await hub.start("s1", None, generation("s1", tokens_per_s=40, max_tokens=10))
    # The stream ends (about 13 events) below the claimed id: the reader ends empty.
    async with asyncio.timeout(10):
        assert await read_all(peer, "s1", 100) == []
    full = await read_all(hub, "s1")
    assert full[-1].data == DONE
    assert len(full) < 100

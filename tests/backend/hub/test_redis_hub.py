"""What only the Redis hub has: keys with TTLs, dropped connections, outages, restarts.

Each test talks to a real redis-server; the ones that stop it run their own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from backend.config import Settings
from backend.hub.base import HubError, HubUnavailable, StreamNotFound
from backend.hub.redis import RedisHub
from backend.hub.redis.connection import COMMAND_CONNECTIONS
from backend.sse import DONE
from tests.backend.hub.helpers import (
    EndRecorder,
    Reader,
    assert_contiguous,
    collect,
    eventually,
    finish_reason,
    generation,
    read_all,
    reference_text,
    text_of,
)
from tests.redis_server import RedisServer, run_redis_server
from tests.servers import free_port

pytestmark = pytest.mark.redis

Connect = Callable[..., Any]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(url, **settings)``: a RedisHub (closed at teardown) and its end recorder."""
    opened: list[RedisHub] = []

    async def _connect(url: str, **settings: Any) -> tuple[RedisHub, EndRecorder]:
        ends = EndRecorder()
        hub = await RedisHub.connect(Settings(hub="redis", redis_url=url, **settings), on_end=ends)
        opened.append(hub)
        return hub, ends

    yield _connect
    for hub in reversed(opened):
        await hub.aclose()


async def test_every_key_of_a_stream_has_a_ttl(redis_url: str, connect: Connect) -> None:
    hub, _ = await connect(redis_url, stream_ttl_s=30)
    peer, _ = await connect(redis_url, stream_ttl_s=30)
    await hub.start("live", None, generation("live", tokens_per_s=20, max_tokens=500))
    # A reader on another worker (one on the stream's own worker takes no lease).
    reader = Reader(await peer.subscribe("live", 0, None))
    await reader.take(2)
    await hub.start("done", None, generation("done"))
    await read_all(peer, "done")  # through Redis: all of it is written
    async with Redis.from_url(redis_url, decode_responses=True) as admin:
        keys = sorted([key async for key in admin.scan_iter("ssechat:stream:*")])
        assert keys == [
            "ssechat:stream:done:events",
            "ssechat:stream:done:meta",
            "ssechat:stream:live:events",
            "ssechat:stream:live:meta",
            "ssechat:stream:live:subs",
        ]
        for key in keys:
            ttl_ms = await admin.pttl(key)
            assert 0 < ttl_ms <= 30_000, key
        assert 0 < await admin.pttl(f"ssechat:worker:{hub.worker_id}") <= 5_000
        # Stored as explicit ids: seq N is entry N-0, the end marker N-1; a
        # content chunk as its template's index and its part alone.
        entries: Any = await admin.xrange("ssechat:stream:done:events")
        assert [entry_id for entry_id, _ in entries[:2]] == ["1-0", "2-0"]
        assert entries[-1][0] == f"{len(entries) - 1}-1"
        assert entries[-1][1] == {"end": "done"}
        events = await read_all(hub, "done")
        assert entries[1][1] == {"t": "0", "d": json.dumps(text_of(events[1:2]))}
        template = json.loads(await admin.hget("ssechat:stream:done:meta", "t0") or "")
        assert template[1] + entries[1][1]["d"] + template[2] == events[1].data
    await reader.aclose()
    await hub.cancel("live", None)


async def test_metrics_bookkeeping(redis_url: str, connect: Connect) -> None:
    hub, _ = await connect(redis_url)
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=500))
    assert hub.live_streams == 1
    await collect(await hub.subscribe("s1", 0, None), limit=3)
    await hub.cancel("s1", None)
    assert hub.live_streams == 0
    async with Redis.from_url(redis_url, decode_responses=True) as admin:
        stored = int(await admin.get("ssechat:bytes") or 0)
    assert stored > 0
    # A heartbeat reads the store's totals.
    await eventually(lambda: (hub.stored_streams, hub.buffered_bytes) == (1, stored))


async def test_stream_survives_dropped_redis_connections(
    redis_server: RedisServer, redis_url: str, connect: Connect
) -> None:
    hub, ends = await connect(redis_url)
    peer, _ = await connect(redis_url)
    await hub.start("s1", None, generation("s1", tokens_per_s=100, max_tokens=150))
    reader = asyncio.create_task(read_all(peer, "s1"))
    for _ in range(4):
        await asyncio.sleep(0.2)
        # Every client connection but this admin one: producer, readers, pub/sub.
        assert redis_server.command("CLIENT", "KILL", "TYPE", "normal").startswith(":")
        assert redis_server.command("CLIENT", "KILL", "TYPE", "pubsub").startswith(":")
    events = await reader
    assert_contiguous(events)
    assert events[-1].data == DONE
    assert text_of(events) == await reference_text(max_tokens=150)
    assert ends.reasons == []
    # The control channel is back (or the heartbeat reads the request): cancel still lands.
    await hub.start("s2", None, generation("s2", tokens_per_s=20, max_tokens=500))
    await collect(await peer.subscribe("s2", 0, None), limit=2)
    await peer.cancel("s2", None)
    assert finish_reason(await read_all(peer, "s2")) == "cancelled"
    assert ends.reasons == ["cancelled"]


async def test_outage_with_redis_keeping_its_data_loses_nothing(connect: Connect) -> None:
    with run_redis_server(persistent=True) as server:
        hub, ends = await connect(server.url, resume_grace_s=10, keepalive_s=1)
        peer, _ = await connect(server.url, resume_grace_s=10, keepalive_s=1)
        await hub.start("s1", None, generation("s1", tokens_per_s=40, max_tokens=120))
        # A reader on the stream's own worker reads its memory: the outage passes it by.
        local = asyncio.create_task(read_all(hub, "s1"))
        reader = Reader(await peer.subscribe("s1", 0, None))
        head = await reader.take(5)
        server.stop()
        # A reader on another worker is told (error event in the HTTP response),
        # not left hanging...
        with pytest.raises(HubUnavailable):
            await reader.rest()
        # ...and requests get a clear 503.
        with pytest.raises(HubUnavailable) as refused:
            await hub.start("s2", None, generation("s2"))
        assert refused.value.status_code == 503
        with pytest.raises(HubUnavailable):
            await peer.subscribe("s1", 0, None)
        # Meanwhile the generation goes on, its events held by the producer.
        await asyncio.sleep(1.0)
        server.start()
        tail = await read_all(peer, "s1", head[-1].seq)
        events = head + tail
        assert_contiguous(events)
        assert events[-1].data == DONE
        assert finish_reason(events) in {"stop", "length"}
        assert text_of(events) == await reference_text(max_tokens=120)
        assert await local == events
        assert ends.reasons == []
        await hub.start("s2", None, generation("s2"))
        assert text_of(await read_all(peer, "s2")) == await reference_text()


async def test_redis_restarted_empty_loses_streams_then_recovers(
    own_redis_server: RedisServer, connect: Connect
) -> None:
    server = own_redis_server
    hub, ends = await connect(server.url, keepalive_s=1)
    peer, _ = await connect(server.url, keepalive_s=1)
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=500))
    reader = Reader(await peer.subscribe("s1", 0, None))
    await reader.take(3)
    server.stop()
    server.start()  # no persistence: every key is gone
    with pytest.raises(HubError):  # StreamNotFound, or HubUnavailable
        await reader.rest()
    await ends.wait_for("error")  # the owner noticed and stopped the generation
    with pytest.raises(StreamNotFound):
        await peer.subscribe("s1", 0, None)
    # New streams work again, across workers, cancel included.
    await hub.start("s2", None, generation("s2"))
    events = await read_all(peer, "s2")
    assert_contiguous(events)
    assert text_of(events) == await reference_text()
    await hub.start("s3", None, generation("s3", tokens_per_s=20, max_tokens=500))
    await collect(await peer.subscribe("s3", 0, None), limit=2)
    await peer.cancel("s3", None)
    assert finish_reason(await read_all(peer, "s3")) == "cancelled"
    assert ends.reasons == ["error", "cancelled"]


async def test_connecting_to_an_absent_redis_fails_clearly() -> None:
    url = f"redis://user:s3cret-password@127.0.0.1:{free_port()}/0"
    with pytest.raises(HubUnavailable, match="Cannot reach Redis") as error:
        await RedisHub.connect(Settings(hub="redis", redis_url=url))
    assert "s3cret-password" not in error.value.message
    assert "SSECHAT_REDIS_URL" in error.value.message


async def test_drain_ends_local_generations_and_keeps_readers_going(
    redis_url: str, connect: Connect
) -> None:
    hub, ends = await connect(redis_url)
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=500))
    reader = Reader(await hub.subscribe("s1", 0, None))
    head = await reader.take(2)
    await hub.drain()
    rest = await reader.rest()  # through the draining hub's own connections
    events = head + rest
    assert_contiguous(events)
    assert finish_reason(events) == "cancelled"
    assert events[-1].data == DONE
    assert ends.reasons == ["shutdown"]
    with pytest.raises(HubUnavailable):
        await hub.start("s2", None, generation("s2"))


async def test_outage_stops_a_generation_nobody_on_its_worker_reads(
    own_redis_server: RedisServer, connect: Connect
) -> None:
    server = own_redis_server
    hub, ends = await connect(server.url, resume_grace_s=0, keepalive_s=1)
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=500))
    server.stop()
    # After max(resume_grace_s, the retry window) without Redis.
    await ends.wait_for("error")
    assert hub.live_streams == 0
    server.start()
    await hub.start("s2", None, generation("s2"))
    assert text_of(await read_all(hub, "s2")) == await reference_text()


async def test_readers_elsewhere_share_one_xread_and_a_few_connections(
    redis_url: str, connect: Connect
) -> None:
    hub, _ = await connect(redis_url)
    peer, _ = await connect(redis_url)
    ids = [f"s{index}" for index in range(5)]
    for stream_id in ids:
        await hub.start(stream_id, None, generation(stream_id, tokens_per_s=40, max_tokens=500))
    readers = [Reader(await peer.subscribe(ids[index % 5], 0, None)) for index in range(200)]
    heads = [await reader.take(3) for reader in readers]
    async with Redis.from_url(redis_url, decode_responses=True) as admin:
        clients: list[dict[str, str]] = await admin.client_list()
    mine = [client for client in clients if client["name"] == f"ssechat-hub:{peer.worker_id}"]
    # Requests' pipelines, control channel, writer, reader: four, not one per reader.
    assert len(mine) <= COMMAND_CONNECTIONS + 2, mine
    # One connection reads (XREAD, for all 200 readers); none other ever blocks.
    assert len([client for client in mine if client["cmd"] == "xread"]) == 1, mine
    assert all(client["cmd"] == "xread" for client in mine if "b" in client["flags"]), mine
    for index, head in enumerate(heads):
        assert_contiguous(head)
        assert head[:3] == heads[index % 5][:3]
    for reader in readers:
        await reader.aclose()
    for stream_id in ids:
        await peer.cancel(stream_id, None)

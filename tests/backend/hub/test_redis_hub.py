"""What only the Redis hub has: keys with TTLs, dropped connections, outages, restarts.

Each test talks to a real redis-server; the ones that stop it run their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from redis.asyncio import Redis

from backend.config import Settings
from backend.hub.base import HubError, HubUnavailable, StreamNotFound
from backend.hub.redis import RedisHub
from backend.sse import DONE
from tests.backend.hub.helpers import (
    EndRecorder,
    Reader,
    assert_contiguous,
    collect,
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
    await hub.start("live", None, generation("live", tokens_per_s=20, max_tokens=500))
    reader = Reader(await hub.subscribe("live", 0, None))
    await reader.take(2)
    await hub.start("done", None, generation("done"))
    await read_all(hub, "done")
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
        # Stored as explicit ids: seq N is entry N-0, the end marker N-1.
        entries: Any = await admin.xrange("ssechat:stream:done:events")
        assert [entry_id for entry_id, _ in entries[:2]] == ["1-0", "2-0"]
        assert entries[-1][0] == f"{len(entries) - 1}-1"
        assert entries[-1][1] == {"end": "done"}
    await reader.aclose()
    await hub.cancel("live", None)


async def test_metrics_bookkeeping(redis_url: str, connect: Connect) -> None:
    hub, _ = await connect(redis_url)
    await hub.start("s1", None, generation("s1", tokens_per_s=20, max_tokens=500))
    assert hub.live_streams == 1
    await hub.cancel("s1", None)
    assert hub.live_streams == 0
    await asyncio.sleep(1.5)  # one heartbeat reads the store's totals
    assert hub.stored_streams == 1
    size = sum(len(event.data.encode()) for event in await read_all(hub, "s1"))
    assert hub.buffered_bytes == size


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
        reader = Reader(await peer.subscribe("s1", 0, None))
        head = await reader.take(5)
        server.stop()
        # The reader is told (error event in the HTTP response), not left hanging...
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

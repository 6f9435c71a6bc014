"""The Responses store, in memory and in a real Redis: owners, late writes, bounds, expiry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from backend.store.base import ResponseStore
from backend.store.memory import MemoryResponseStore
from backend.store.redis import RedisResponseStore


def response(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": "resp_1", "object": "response", "status": status, **extra}


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[ResponseStore]:
    opened: ResponseStore
    if request.param == "redis":
        opened = await RedisResponseStore.connect(
            redis_url=request.getfixturevalue("redis_url"), ttl_s=30
        )
    else:
        opened = MemoryResponseStore(ttl_s=30, max_records=100, max_bytes=1 << 20)
    yield opened
    await opened.aclose()


async def test_a_record_belongs_to_its_owner(store: ResponseStore) -> None:
    context = [{"type": "message", "role": "user", "content": "héllo 🚀"}]
    await store.create("resp_1", "owner-a", response("queued"), context)
    await store.update("resp_1", response("completed", output=[{"type": "message"}]))
    mine = await store.load("resp_1", "owner-a")
    assert mine is not None
    assert mine.response["status"] == "completed"
    assert mine.response["output"] == [{"type": "message"}]
    assert mine.context == context
    assert await store.load("resp_1", "owner-b") is None
    assert await store.load("resp_1", None) is None
    assert not await store.delete("resp_1", "owner-b")
    assert await store.delete("resp_1", "owner-a")
    assert await store.load("resp_1", "owner-a") is None
    assert not await store.delete("resp_1", "owner-a")


async def test_an_update_after_delete_writes_nothing(store: ResponseStore) -> None:
    await store.create("resp_1", None, response("in_progress"), [])
    await store.delete("resp_1", None)
    await store.update("resp_1", response("cancelled"))  # the generation's late write
    assert await store.load("resp_1", None) is None
    await store.update("resp_never", response("completed"))
    assert await store.load("resp_never", None) is None


async def test_memory_store_is_bounded_oldest_first() -> None:
    store = MemoryResponseStore(ttl_s=30, max_records=3, max_bytes=1 << 20)
    for index in range(5):
        await store.create(f"resp_{index}", None, response("completed"), [])
    await store.update("resp_2", response("completed"))  # written last: kept longest
    await store.create("resp_5", None, response("completed"), [])
    kept = [i for i in range(6) if await store.load(f"resp_{i}", None) is not None]
    assert kept == [2, 4, 5]
    assert store.stored == 3
    small = MemoryResponseStore(ttl_s=30, max_records=100, max_bytes=2000)
    for index in range(50):
        await small.create(f"resp_{index}", None, response("completed"), [{"text": "x" * 100}])
    assert small.stored_bytes <= 2000
    assert await small.load("resp_49", None) is not None
    assert await small.load("resp_0", None) is None


async def test_memory_store_expires_records_after_their_last_write() -> None:
    now = [100.0]
    store = MemoryResponseStore(ttl_s=10, max_records=10, max_bytes=1 << 20, clock=lambda: now[0])
    await store.create("resp_1", None, response("in_progress"), [])
    now[0] = 109.0
    await store.update("resp_1", response("completed"))
    now[0] = 118.0
    assert await store.load("resp_1", None) is not None
    now[0] = 119.0
    assert await store.load("resp_1", None) is None
    assert store.stored == 0
    assert store.stored_bytes == 0


@pytest.mark.redis
async def test_redis_record_expires_after_its_last_write(redis_url: str) -> None:
    store = await RedisResponseStore.connect(redis_url=redis_url, ttl_s=30)
    try:
        await store.create("resp_1", "me", response("queued"), [])
        async with Redis.from_url(redis_url, decode_responses=True) as admin:
            assert await admin.hget("ssechat:response:resp_1", "owner") == "me"
            await admin.pexpire("ssechat:response:resp_1", 5_000)
            await store.update("resp_1", response("completed"))
            assert 25_000 < await admin.pttl("ssechat:response:resp_1") <= 30_000
    finally:
        await store.aclose()

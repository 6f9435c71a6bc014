"""Fixtures of the hub tests: a real redis-server, and hubs of both kinds.

The contract tests take ``hubs``, parametrized over the memory and the Redis
hub: ``await hubs.make(**settings)`` builds a hub (closed at teardown), and
``await hubs.peer(hub)`` another "worker" on the same store (the same object
for the memory hub, a second ``RedisHub`` with its own connections for Redis),
so every resume and cancel can go through a worker that does not run the
generation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.asyncio import Redis

from backend.config import Settings
from backend.hub.base import StreamHub
from backend.hub.factory import build_hub
from backend.hub.memory import MemoryHub
from tests.backend.hub.helpers import EndRecorder
from tests.redis_server import RedisServer, run_redis_server

DEFAULTS: dict[str, Any] = {
    "keepalive_s": 5.0,
    "stream_ttl_s": 60.0,
    "resume_grace_s": 5.0,
    "max_streams": 100,
    "max_buffered_bytes": 16 * 1024 * 1024,
}


@pytest.fixture
def own_redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test alone (it may stop and restart it)."""
    with run_redis_server() as server:
        yield server


@dataclass
class Hubs:
    kind: str
    redis_url: str | None
    ends: EndRecorder = field(default_factory=EndRecorder)
    _settings: dict[int, dict[str, Any]] = field(default_factory=dict)
    _open: list[StreamHub] = field(default_factory=list)

    async def make(self, **overrides: Any) -> StreamHub:
        """A hub with ``DEFAULTS`` + ``overrides``; its ``on_end`` is ``self.ends``."""
        settings = {**DEFAULTS, **overrides}
        hub = await self._build(settings, self.ends)
        self._settings[id(hub)] = settings
        return hub

    async def peer(self, hub: StreamHub) -> StreamHub:
        """Another worker on the same store (for the memory hub: the hub itself)."""
        if isinstance(hub, MemoryHub):
            return hub
        return await self._build(self._settings[id(hub)], EndRecorder())

    async def _build(self, settings: dict[str, Any], on_end: EndRecorder) -> StreamHub:
        # Through the app's own factory, as ``create_app`` builds it.
        store: dict[str, Any] = {"redis_url": self.redis_url} if self.redis_url else {}
        hub = await build_hub(Settings(hub=self.kind, **store, **settings), on_end)
        assert hub.kind == self.kind
        self._open.append(hub)
        return hub

    async def stored_bytes(self, hub: StreamHub) -> int:
        """The store's byte total now (Redis: read from Redis, not the heartbeat's copy)."""
        if self.redis_url is None:
            return hub.buffered_bytes
        async with Redis.from_url(self.redis_url, decode_responses=True) as admin:
            return int(await admin.get("ssechat:bytes") or 0)

    async def aclose(self) -> None:
        for hub in reversed(self._open):
            await hub.aclose()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def hubs(request: pytest.FixtureRequest) -> AsyncIterator[Hubs]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    kit = Hubs(request.param, url)
    try:
        yield kit
    finally:
        await kit.aclose()

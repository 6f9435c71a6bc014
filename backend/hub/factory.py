"""Builds the hub named by ``SSECHAT_HUB``."""

from __future__ import annotations

from collections.abc import Callable

from backend.config import Settings
from backend.hub.base import EndReason, StreamHub, hub_bounds
from backend.hub.memory import MemoryHub


async def build_hub(settings: Settings, on_end: Callable[[EndReason], None]) -> StreamHub:
    if settings.hub == "redis":
        from backend.hub.redis import RedisHub  # optional extra: import lazily

        return await RedisHub.connect(settings, on_end=on_end)
    return MemoryHub(**hub_bounds(settings), on_end=on_end)

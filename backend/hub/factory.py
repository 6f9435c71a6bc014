"""Builds the hub named by ``SSECHAT_HUB``."""

from __future__ import annotations

from collections.abc import Callable

from backend.config import Settings
from backend.hub.base import EndReason, StreamHub
from backend.hub.memory import MemoryHub


async def build_hub(settings: Settings, on_end: Callable[[EndReason], None]) -> StreamHub:
    if settings.hub == "redis":
        from backend.hub.redis import RedisHub  # optional extra: import lazily

        return await RedisHub.connect(settings, on_end=on_end)
    return MemoryHub(
        keepalive_s=settings.keepalive_s,
        stream_ttl_s=settings.stream_ttl_s,
        resume_grace_s=settings.resume_grace_s,
        max_streams=settings.max_streams,
        max_buffered_bytes=settings.max_buffered_bytes,
        on_end=on_end,
        flush_window_s=settings.flush_window_ms / 1000,
    )

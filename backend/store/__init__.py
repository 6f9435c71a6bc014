"""The Responses store: what ``GET /v1/responses/{id}`` and ``previous_response_id`` read.

``base`` (protocol, record), ``memory`` (one process, bounded), ``redis``
(shared by every worker, with ``SSECHAT_HUB=redis``). ``build_store`` picks one.
"""

from __future__ import annotations

from fastapi import Request

from backend.store.base import ResponseStore
from backend.store.memory import MemoryResponseStore


async def build_store(
    *, redis_url: str | None, ttl_s: float, max_records: int, max_bytes: int
) -> ResponseStore:
    """In Redis when a Redis URL is given (every worker reads every response),
    else in this process."""
    if redis_url is not None:
        from backend.store.redis import RedisResponseStore  # optional extra: import lazily

        return await RedisResponseStore.connect(redis_url=redis_url, ttl_s=ttl_s)
    return MemoryResponseStore(ttl_s=ttl_s, max_records=max_records, max_bytes=max_bytes)


async def get_response_store(request: Request) -> ResponseStore:
    # async: a plain ``def`` dependency would cost a thread-pool hop per request.
    store: ResponseStore = request.app.state.response_store
    return store

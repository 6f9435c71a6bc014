"""The in-process Responses store: one worker, bounded in records and bytes.

Records live ``ttl_s`` from their last write; beyond ``max_records`` or
``max_bytes`` the least recently written ones go first (a dict kept in
write order), so memory stays bounded however many responses are created.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.generation.payload import dumps
from backend.store.base import JSONObject, StoredResponse


@dataclass(slots=True)
class _Record:
    owner: str | None
    response: JSONObject
    context: list[JSONObject]
    context_bytes: int
    size: int
    expires_at: float


class MemoryResponseStore:
    kind = "memory"

    def __init__(
        self,
        *,
        ttl_s: float,
        max_records: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._records: dict[str, _Record] = {}
        self._bytes = 0

    @property
    def stored(self) -> int:
        return len(self._records)

    @property
    def stored_bytes(self) -> int:
        return self._bytes

    async def create(
        self, response_id: str, owner: str | None, response: JSONObject, context: list[JSONObject]
    ) -> None:
        context_bytes = len(dumps(context).encode())
        size = context_bytes + len(dumps(response).encode())
        self._forget(response_id)
        self._records[response_id] = _Record(
            owner, response, context, context_bytes, size, self._clock() + self._ttl_s
        )
        self._bytes += size
        self._prune()

    async def update(self, response_id: str, response: JSONObject) -> None:
        record = self._live(response_id)
        if record is None:
            return
        size = record.context_bytes + len(dumps(response).encode())
        self._bytes += size - record.size
        record.response, record.size = response, size
        record.expires_at = self._clock() + self._ttl_s
        # Move to the end: the order is the eviction order.
        self._records[response_id] = self._records.pop(response_id)
        self._prune()

    async def load(self, response_id: str, owner: str | None) -> StoredResponse | None:
        record = self._live(response_id)
        if record is None or record.owner != owner:
            return None
        return StoredResponse(record.response, record.context)

    async def delete(self, response_id: str, owner: str | None) -> bool:
        record = self._live(response_id)
        if record is None or record.owner != owner:
            return False
        self._forget(response_id)
        return True

    async def aclose(self) -> None:
        self._records.clear()
        self._bytes = 0

    def _live(self, response_id: str) -> _Record | None:
        record = self._records.get(response_id)
        if record is not None and record.expires_at <= self._clock():
            self._forget(response_id)
            return None
        return record

    def _forget(self, response_id: str) -> None:
        record = self._records.pop(response_id, None)
        if record is not None:
            self._bytes -= record.size

    def _prune(self) -> None:
        now = self._clock()
        while self._records:
            oldest_id, oldest = next(iter(self._records.items()))
            over = len(self._records) > self._max_records or self._bytes > self._max_bytes
            if not over and oldest.expires_at > now:
                return
            self._forget(oldest_id)

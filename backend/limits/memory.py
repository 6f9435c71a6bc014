"""Rate and concurrency limits counted in this process (the memory hub's)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from backend.limits.base import WINDOW_S, StreamSlot, too_many_requests, too_many_streams


class MemoryLimits:
    """Counts in this process. Only the current minute's counters are kept."""

    def __init__(
        self,
        *,
        per_minute: int,
        max_concurrent: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.per_minute = per_minute
        self.max_concurrent = max_concurrent
        self._clock = clock
        self._window = -1
        self._counts: dict[str, int] = {}
        self._running: dict[str, int] = {}

    @property
    def held_slots(self) -> int:
        return sum(self._running.values())

    async def check_rate(self, subject: str) -> None:
        if not self.per_minute:
            return
        now = self._clock()
        window = int(now // WINDOW_S)
        if window != self._window:
            self._window = window
            self._counts.clear()  # bounded: one entry per caller seen this minute
        count = self._counts.get(subject, 0) + 1
        self._counts[subject] = count
        if count > self.per_minute:
            retry_after = max(1, math.ceil((window + 1) * WINDOW_S - now))
            raise too_many_requests(self.per_minute, retry_after)

    async def acquire_stream(self, subject: str) -> StreamSlot:
        if not self.max_concurrent:
            return StreamSlot()
        running = self._running.get(subject, 0)
        if running >= self.max_concurrent:
            raise too_many_streams(self.max_concurrent)
        self._running[subject] = running + 1
        return StreamSlot(lambda: self._release(subject))

    def _release(self, subject: str) -> None:
        left = self._running.get(subject, 0) - 1
        if left > 0:
            self._running[subject] = left
        else:
            self._running.pop(subject, None)

    async def aclose(self) -> None:
        return None

"""A generation this worker runs, with what the Redis side needs to know about it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import cached_property

from backend.hub.runner import Run


@dataclass(eq=False)
class Owned(Run):
    """Its events live in ``stream.log`` (its own readers read them there); the
    writer copies them to Redis. ``written`` = last seq stored in Redis."""

    written: int = 0
    templates_written: int = 0
    names_written: int = 0
    # False once Redis lost it (or it outlived its keys): nothing more to write.
    writable: bool = True
    # Set when the end marker is in Redis, or writing gave up.
    flushed: asyncio.Event = field(default_factory=asyncio.Event)
    expires_at: float = 0.0  # monotonic time past which its keys are surely gone
    outage_since: float | None = None  # first failed write of the current outage
    attached: bool = False  # a reader on this worker attached once
    grace: asyncio.TimerHandle | None = None
    checking: bool = False  # an abandonment count is in flight

    @cached_property
    def key(self) -> bytes:
        """The stream id as the writer sends it."""
        return self.stream_id.encode()

    @property
    def end_marker(self) -> str:
        return self.ended_early or "done"

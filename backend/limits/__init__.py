"""Per-caller limits: requests per minute and concurrent generations (429 + ``Retry-After``).

``base`` (protocol, errors, caller subject), ``memory`` (one process),
``redis`` (shared by every worker). ``build_limits`` picks one.
"""

from __future__ import annotations

from backend.limits.base import Limits
from backend.limits.memory import MemoryLimits


async def build_limits(
    *,
    per_minute: int,
    max_concurrent: int,
    redis_url: str | None,
    slot_ttl_s: float,
) -> Limits:
    """Redis-backed when a Redis URL is given and a limit is on (shared by all
    workers), else counted in this process."""
    if redis_url is not None and (per_minute or max_concurrent):
        from backend.limits.redis import RedisLimits  # optional extra: import lazily

        return await RedisLimits.connect(
            redis_url=redis_url,
            per_minute=per_minute,
            max_concurrent=max_concurrent,
            slot_ttl_s=slot_ttl_s,
        )
    return MemoryLimits(per_minute=per_minute, max_concurrent=max_concurrent)

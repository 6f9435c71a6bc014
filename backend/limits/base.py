"""Per-caller limits: requests per minute and concurrent generations → 429 + ``Retry-After``.

This module: the ``Limits`` protocol, its errors, and whom a limit applies to.

The caller ("subject") is the API key's owner tag, or the client address
when the API is open (behind a proxy, that is the address uvicorn resolves
from ``X-Forwarded-For`` for trusted proxies, see ``--forwarded-allow-ips``).

What counts
-----------
- ``SSECHAT_RATE_LIMIT_PER_MIN``: every ``POST /v1/chat/completions``
  (streaming or not, accepted or refused). Resume, cancel, ``/v1/models`` and
  ``/metrics`` do not count: a browser ``EventSource`` reconnecting after a
  network blip, or a Stop button, must never be refused for being busy.
  Fixed one-minute windows (``INCR`` + ``EXPIRE`` of a key per minute), so a
  caller may burst up to twice the limit across a window boundary;
  ``Retry-After`` is the time left in the window.
- ``SSECHAT_MAX_CONCURRENT_STREAMS_PER_KEY``: generations running at once
  (streaming or not). The slot belongs to the *generation*, not to the HTTP
  response: it is taken before the generation starts and released when the
  generation ends (finished, failed, cancelled, abandoned after
  ``resume_grace_s``, or stopped by shutdown). A client that disconnects and
  resumes keeps its one slot rather than taking a second, and a stream left
  running during the resume grace period still counts, because it still
  uses the engine.

Where the counts live
---------------------
- ``MemoryLimits``: this process (the memory hub runs one worker).
- ``RedisLimits`` (``SSECHAT_HUB=redis``): shared by every worker and replica.
  Request windows are ``P:rpm:{subject}:{minute}`` counters. Each running
  generation is a member of the sorted set ``P:slots:{subject}`` scored with a
  lease deadline that its worker renews every ``stream_slot_ttl_s / 3``; taking
  a slot first drops expired members, so a worker that crashed (or lost
  Redis) without releasing frees its slots within ``stream_slot_ttl_s``
  instead of leaking them forever. Times come from Redis' ``TIME``, so the
  workers' clocks do not matter. If Redis cannot be reached the request gets
  a 503 (fail closed, like the redis hub itself).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from fastapi import Request

from backend.errors import APIError

WINDOW_S = 60
# Retry-After for the concurrency cap: we cannot know when a slot frees up.
CONCURRENCY_RETRY_AFTER_S = 1


def caller_subject(request: Request, owner: str | None) -> str:
    """Whom a limit applies to: the key, or (open API) the client address."""
    if owner is not None:
        return f"key:{owner}"
    host = request.client.host if request.client is not None else "unknown"
    return f"addr:{host}"


def too_many_requests(limit: int, retry_after_s: int) -> APIError:
    # OpenAI's shape for RPM limits: type "requests", code "rate_limit_exceeded".
    return APIError(
        429,
        f"Rate limit reached: {limit} requests per minute. Please try again in {retry_after_s}s.",
        error_type="requests",
        code="rate_limit_exceeded",
        headers={
            "Retry-After": str(retry_after_s),
            "X-RateLimit-Limit-Requests": str(limit),
            "X-RateLimit-Remaining-Requests": "0",
            "X-RateLimit-Reset-Requests": f"{retry_after_s}s",
        },
    )


def too_many_streams(limit: int) -> APIError:
    return APIError(
        429,
        f"Too many concurrent generations: at most {limit} per API key "
        "(or per client address when the API is open). Wait for one to finish or cancel one.",
        error_type="requests",
        code="concurrent_streams_exceeded",
        headers={"Retry-After": str(CONCURRENCY_RETRY_AFTER_S)},
    )


def limiter_unavailable(error: Exception) -> APIError:
    return APIError(
        503,
        f"Rate limiter unavailable (Redis): {type(error).__name__}. Retry shortly.",
        error_type="server_error",
        code="rate_limiter_unavailable",
        headers={"Retry-After": "1"},
    )


class StreamSlot:
    """One held concurrency slot; ``release`` is idempotent and never blocks."""

    def __init__(self, on_release: Callable[[], None] | None = None) -> None:
        self._on_release = on_release

    @property
    def held(self) -> bool:
        return self._on_release is not None

    def release(self) -> None:
        on_release, self._on_release = self._on_release, None
        if on_release is not None:
            on_release()


class Limits(Protocol):
    @property
    def held_slots(self) -> int:
        """Slots held by generations running in this process."""
        ...

    async def check_rate(self, subject: str) -> None:
        """Count one request; raise a 429 ``APIError`` beyond the per-minute limit."""
        ...

    async def acquire_stream(self, subject: str) -> StreamSlot:
        """Take a concurrency slot; raise a 429 ``APIError`` at the cap."""
        ...

    async def aclose(self) -> None: ...


async def get_limits(request: Request) -> Limits:
    # async: FastAPI runs a plain ``def`` dependency in its thread pool, a thread
    # hop per request for an attribute read.
    limits: Limits = request.app.state.limits
    return limits

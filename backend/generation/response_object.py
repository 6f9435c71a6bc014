"""What a rendered response (``ResponsesGeneration``) and a relayed one
(``ProxiedResponsesGeneration``) share: the Response object as it stands, its
snapshots, the store they are handed to, and how a response that is stopped
(cancel, shutdown, every reader gone, a failure) ends and says so.

Subclasses number their own events and say, in ``_stopped``, which events end
a response stopped early; everything that follows
from that (the closing events the hub asks for, the object stored when the
generation is stopped, a failure reported by a non-streamed run) lives here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal

from backend.engines.base import EngineError, Usage
from backend.generation.answer import run_through
from backend.generation.response_items import Body
from backend.hub.base import EndReason, Event, Produced

logger = logging.getLogger(__name__)

Status = Literal["queued", "in_progress", "completed", "incomplete", "cancelled", "failed"]
TERMINAL: frozenset[str] = frozenset({"completed", "incomplete", "cancelled", "failed"})
Record = Callable[[dict[str, Any]], Awaitable[None]]
Ending = tuple[list[Event], dict[str, Any]]
# OpenAI's ``response.error.code`` is an enum; an engine failure is a server error.
FAILED_CODE = "server_error"


def usage_body(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens or 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens,
    }


def error_event_body(message: str, code: str | None, param: str | None = None) -> Body:
    return {"code": code, "message": message, "param": param}


def snapshot_of(
    base: Mapping[str, Any],
    status: Status,
    output: Sequence[Body],
    *,
    usage: Usage | None = None,
    error: Body | None = None,
    incomplete: str | None = None,
) -> dict[str, Any]:
    """The Response object ``base`` with this status and output (a terminal status
    stamps ``completed_at``)."""
    response = dict(base)
    response["status"] = status
    response["output"] = list(output)
    if usage is not None:
        response["usage"] = usage_body(usage)
    if error is not None:
        response["error"] = error
    if incomplete is not None:
        response["incomplete_details"] = {"reason": incomplete}
    if status in TERMINAL:
        response["completed_at"] = int(time.time())
    return response


class RecordedResponse:
    """A response generation whose Response object is kept (``response``) and stored."""

    # Who produced what failed, for the log line.
    _source = "engine"

    def __init__(self, response: dict[str, Any], record: Record | None) -> None:
        self._record = record
        self._seq = 0  # the next sequence_number
        self._finished = False
        # The Response object as it stands (its last snapshot), and an engine
        # failure for a non-streamed run to report as an HTTP error.
        self.response = response
        self.error: EngineError | None = None

    @property
    def response_id(self) -> str:
        return str(self.response["id"])

    @property
    def started(self) -> bool:
        """True once the first event was produced."""
        return self._seq > 0

    def events(self) -> AsyncGenerator[Produced, None]:
        raise NotImplementedError

    def _stopped(self, status: Status, error: Body | None) -> Ending:
        """The events that end a response stopped early (``cancelled``, or ``failed``
        with ``error``) from the current sequence number on, and its final object.
        Pure: the hub may ask for closing events before the end."""
        raise NotImplementedError

    async def _save(self, response: dict[str, Any]) -> None:
        self.response = response
        if self._record is None:
            return
        try:
            await self._record(response)
        except Exception:  # the stream must not fail because the store did
            logger.exception("could not store response %s", self.response_id)

    async def _finish(self, events: list[Event], final: dict[str, Any]) -> list[Event]:
        """Store the final object, then count the terminal events as sent: if a cancel
        lands while storing, the closing events take their place with the same numbers."""
        await self._save(final)
        self._seq += len(events)
        self._finished = True
        return events

    def _failure(self, error: EngineError) -> Ending:
        logger.warning("%s error in %s: %s", self._source, self.response_id, error.message)
        self.error = error
        return self._stopped("failed", {"code": FAILED_CODE, "message": error.message})

    async def _save_stopped(self, stop: BaseException) -> None:
        """Stopped by the hub (cancel, shutdown, no reader left), by a client that
        went away, or by a bug: the stored object says so before the closing
        events exist."""
        if self._finished:
            return
        if isinstance(stop, asyncio.CancelledError):
            _, final = self._stopped("cancelled", None)
        else:
            body = {"code": FAILED_CODE, "message": f"Generation failed: {stop}"}
            _, final = self._stopped("failed", body)
        await self._save(final)

    def closing_events(self, reason: EndReason, message: str) -> Sequence[Event]:
        if self._finished:
            return []
        if reason == "error":
            body = {"code": FAILED_CODE, "message": f"Generation failed: {message}"}
            events, _ = self._stopped("failed", body)
        else:
            events, _ = self._stopped("cancelled", None)
        return events


async def run_to_end(generation: RecordedResponse) -> dict[str, Any]:
    """A non-streamed response: the final Response object. Raises the engine's
    ``EngineError`` if it failed."""
    await run_through(generation)
    return generation.response

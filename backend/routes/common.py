"""What every dialect route does the same way: who is calling, admission
(draining, rate and concurrency limits), starting a generation on the hub,
answering with its SSE stream, and resuming one (``add_resume_route``: the
``GET …/{id}/events`` route of the dialects that have one).

A dialect route parses its own request shape, builds a ``GenerationRequest``
(``backend.generation.request``), chooses its renderer, and hands the rest
to these helpers, so limits, ownership, metrics and resume behave the same
in every dialect.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response

from backend.engines.base import (
    Engine,
    EngineError,
    GenerationRequest,
    ResponsesUpstream,
    TokenDelta,
)
from backend.errors import APIError, api_error_from_engine
from backend.generation.wrappers import (
    SlotGeneration,
    logged_deltas,
    metered_deltas,
    metered_upstream_events,
)
from backend.http.disconnect import cancel_on_disconnect
from backend.hub.base import Generation
from backend.limits.base import Limits, caller_subject, get_limits
from backend.security import authenticate
from backend.services import Services, get_services
from backend.sse import KEEPALIVE_COMMENT
from backend.streaming import HubErrorEvents, SSEResponse, sse_response

ServicesDep = Annotated[Services, Depends(get_services)]
LimitsDep = Annotated[Limits, Depends(get_limits)]

# Our ids are 1, 2, 3 …; documented so clients (and schemathesis) know a non-number is a 400.
EVENT_ID_PATTERN = r"^[0-9]*$"
STREAM_ID_PATTERN = r"^[A-Za-z0-9_\-]+$"

T = TypeVar("T")

StreamIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=STREAM_ID_PATTERN)]
# str with "" for absent, not str | None: a nullable header has no wire form.
LastEventIdHeader = Annotated[
    str, Header(alias="Last-Event-ID", max_length=32, pattern=EVENT_ID_PATTERN)
]
LastEventIdQuery = Annotated[str, Query(max_length=32, pattern=EVENT_ID_PATTERN)]

# What a resume route (GET …/{id}/events) may answer, for /openapi.json.
RESUME_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}},
    204: {"description": "The stream has no event after Last-Event-ID: stop reconnecting"},
    404: {"description": "Unknown, expired, or another key's"},
}

# The ``dialect`` label of the metrics, by route prefix.
_DIALECTS = (
    ("/v1/chat/completions", "chat_completions"),
    ("/v1/responses", "responses"),
    ("/v1/messages", "messages"),
)


def dialect_of(path: str) -> str:
    for prefix, dialect in _DIALECTS:
        if path.startswith(prefix):
            return dialect
    return "other"


def caller_owner(request: Request, services: Services) -> str | None:
    """The caller's owner tag (``None`` when the API is open); 401 otherwise."""
    return authenticate(request, services.settings.api_key_list)


def refuse_while_draining(request: Request) -> None:
    if request.app.state.draining:
        raise APIError(
            503,
            "Server is shutting down; retry (another worker or replica will answer).",
            error_type="server_error",
            code="shutting_down",
            headers={"Retry-After": "1"},
        )


def parse_last_event_id(header: str | None, query: str | None) -> int:
    """The id a client resumes after: the ``Last-Event-ID`` header, else a query value.

    The header wins: a browser EventSource reconnecting keeps its original URL
    (query included) and sends its newest id in the header.
    """
    raw = header if header is not None and header.strip() != "" else query
    if raw is None or raw.strip() == "":
        return 0
    try:
        value = int(raw.strip())
    except ValueError:
        raise APIError(
            400,
            f"Last-Event-ID must be a non-negative integer, got {raw[:40]!r}.",
            code="invalid_value",
            param="Last-Event-ID",
        ) from None
    if value < 0:
        raise APIError(400, "Last-Event-ID must be non-negative.", code="invalid_value")
    return value


class Admission:
    """One admitted request: its caller, and the limits it was checked against."""

    def __init__(self, request: Request, services: Services, limits: Limits) -> None:
        self.request = request
        self.services = services
        self.limits = limits
        self.owner = caller_owner(request, services)
        self.subject = caller_subject(request, self.owner)
        self.started = time.perf_counter()
        self.dialect = dialect_of(request.scope["path"])
        self.engine_name = "unknown"  # until ``deltas`` names it

    async def check_rate(self) -> None:
        await self.limits.check_rate(self.subject)

    def deltas(
        self, engine: Engine, generation_request: GenerationRequest, stream_id: str
    ) -> AsyncGenerator[TokenDelta, None]:
        """The engine's deltas for this request, counted for the metrics (every
        dialect alike), and logged when ``log_content`` is on."""
        self.engine_name = engine.name
        meter = self.services.metrics.meter(self.dialect, engine.name, self.started)
        deltas = metered_deltas(engine.stream(generation_request), meter)
        if self.services.settings.log_content:
            return logged_deltas(deltas, stream_id)
        return deltas

    def upstream_events(
        self, upstream: ResponsesUpstream, body: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """A relayed response's events from its upstream, counted for the metrics."""
        self.engine_name = upstream.name
        meter = self.services.metrics.meter(self.dialect, upstream.name, self.started)
        return metered_upstream_events(upstream.responses_events(body), meter)

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """A non-streaming answer: holds a concurrency slot while it runs, and is
        cancelled (slot freed) if the client goes away. An engine failure becomes
        the dialect's error answer (the metered deltas have counted it)."""
        refuse_while_draining(self.request)
        slot = await self.limits.acquire_stream(self.subject)
        try:
            return await cancel_on_disconnect(self.request.receive, work())
        except EngineError as error:
            raise api_error_from_engine(error) from None
        finally:
            slot.release()

    async def start(
        self, stream_id: str, generation: Generation, *, background: bool = False
    ) -> None:
        """Run ``generation`` on the hub under ``stream_id``; the concurrency slot
        follows the generation, not this request. A ``background`` generation runs
        to its end with or without readers."""
        refuse_while_draining(self.request)
        slot = await self.limits.acquire_stream(self.subject)
        if slot.held:
            generation = SlotGeneration(generation, slot)
        try:
            refuse_while_draining(self.request)  # again: acquiring the slot may have awaited
            await self.services.hub.start(stream_id, self.owner, generation, background=background)
        except BaseException:
            slot.release()
            raise
        self.services.metrics.streams_total.add((self.dialect, self.engine_name))

    async def stream(
        self,
        stream_id: str,
        after: int,
        hub_error_events: HubErrorEvents,
        *,
        keepalive: bytes = KEEPALIVE_COMMENT,
    ) -> SSEResponse:
        """The SSE response for ``stream_id`` from event ``after`` + 1 on."""
        return await open_stream(
            self.services,
            stream_id,
            after,
            self.owner,
            hub_error_events=hub_error_events,
            keepalive=keepalive,
        )


async def open_stream(
    services: Services,
    stream_id: str,
    after: int,
    owner: str | None,
    *,
    hub_error_events: HubErrorEvents,
    keepalive: bytes = KEEPALIVE_COMMENT,
) -> SSEResponse:
    """Subscribe to a stream (404 if unknown or foreign) and answer with its events;
    ``keepalive`` is what an idle stream sends (the dialect's ping, or a comment)."""
    subscription = await services.hub.subscribe(stream_id, after, owner)
    if after > 0:
        services.metrics.resumes.inc()
    return sse_response(
        subscription,
        stream_id=stream_id,
        retry_ms=services.settings.retry_ms,
        metrics=services.metrics,
        hub_error_events=hub_error_events,
        close_after_events=services.settings.fault_close_after_events,
        keepalive=keepalive,
    )


def add_resume_route(
    router: APIRouter, *, hub_error_events: HubErrorEvents, keepalive: bytes = KEEPALIVE_COMMENT
) -> None:
    """``GET {prefix}/{stream_id}/events`` on ``router``: a dialect's resume route."""

    @router.get("/{stream_id}/events", responses=RESUME_RESPONSES)
    async def stream_events(
        stream_id: StreamIdPath,
        request: Request,
        services: ServicesDep,
        last_event_id_header: LastEventIdHeader = "",
        last_event_id: LastEventIdQuery = "",
    ) -> Response:
        """Replay every event after Last-Event-ID, then follow the stream live."""
        owner = caller_owner(request, services)
        after = parse_last_event_id(last_event_id_header, last_event_id)
        return await open_stream(
            services,
            stream_id,
            after,
            owner,
            hub_error_events=hub_error_events,
            keepalive=keepalive,
        )

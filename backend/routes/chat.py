"""``/v1/chat/completions``: start, resume (Last-Event-ID) and cancel streams."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from backend.completions import (
    ChatCompletionGeneration,
    complete,
    hub_error_events,
    new_completion_id,
)
from backend.engines.base import ChatMessage, Engine, EngineError, GenerationRequest
from backend.errors import APIError, error_body
from backend.generation.request import RequestLimits, build_request
from backend.http.disconnect import cancel_on_disconnect
from backend.hub.base import Generation
from backend.ratelimit import Limits, SlotGeneration, caller_subject, get_limits
from backend.schemas import ChatCompletionRequest
from backend.security import ContentLog, authenticate
from backend.services import Services, get_services
from backend.streaming import sse_response

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/chat/completions",
    tags=["chat"],
    responses={
        400: {"description": "Invalid request (OpenAI-style error body)"},
        401: {"description": "Missing or wrong API key"},
    },
)

ServicesDep = Annotated[Services, Depends(get_services)]
LimitsDep = Annotated[Limits, Depends(get_limits)]
# Our ids are 1, 2, 3 …; documented so clients (and schemathesis) know a non-number is a 400.
_EVENT_ID_PATTERN = r"^[0-9]*$"
StreamIdPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")]

_SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "`chat.completion` JSON, or with `stream: true` an SSE stream",
        "content": {"application/json": {}, "text/event-stream": {}},
    },
    400: {"description": "Invalid request"},
    401: {"description": "Missing or wrong API key"},
    404: {"description": "Unknown model or stream"},
    413: {"description": "Body too large"},
    429: {"description": "Rate limit or concurrent-stream cap reached (see Retry-After)"},
    503: {"description": "At capacity, or shutting down"},
}


def _owner(request: Request, services: Services) -> str | None:
    return authenticate(request, services.settings.api_key_list)


def _generation_request(
    body: ChatCompletionRequest, services: Services
) -> tuple[GenerationRequest, Engine]:
    stop: tuple[str, ...] = ()
    if isinstance(body.stop, str):
        stop = (body.stop,)
    elif body.stop:
        stop = tuple(body.stop)
    return build_request(
        messages=[
            ChatMessage(role=message.role, content=message.text()) for message in body.messages
        ],
        model=body.model,
        engines=services.engines,
        limits=RequestLimits.from_settings(services.settings),
        max_tokens=body.max_completion_tokens or body.max_tokens,
        stop=stop,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
    )


def _refuse_while_draining(request: Request) -> None:
    if getattr(request.app.state, "draining", False):
        raise APIError(
            503,
            "Server is shutting down; retry (another worker or replica will answer).",
            error_type="server_error",
            code="shutting_down",
            headers={"Retry-After": "1"},
        )


@router.post("", responses=_SSE_RESPONSES)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, services: ServicesDep, limits: LimitsDep
) -> Response:
    owner = _owner(request, services)
    subject = caller_subject(request, owner)
    await limits.check_rate(subject)
    generation_request, engine = _generation_request(body, services)
    metrics = services.metrics
    completion_id = new_completion_id()
    log_content = services.settings.log_content
    if log_content:
        logger.info("%s prompt: %r", completion_id, generation_request.messages)
    _refuse_while_draining(request)
    # The slot follows the generation, not this response (see backend/ratelimit.py).
    slot = await limits.acquire_stream(subject)
    if not body.stream:
        try:
            result = await cancel_on_disconnect(
                request.receive, complete(engine, generation_request, completion_id)
            )
        except EngineError as error:
            metrics.errors.inc(label_value=error.error_type)
            status = (
                400
                if error.error_type == "invalid_request_error"
                else 502
                if error.error_type.startswith("upstream")
                else 500
            )
            return JSONResponse(error_body(error.message, error.error_type, error.code), status)
        finally:
            slot.release()
        if log_content:
            answer = result["choices"][0]["message"]["content"]
            logger.info("%s answer: %r", completion_id, answer)
        return JSONResponse(result)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    generation: Generation = ChatCompletionGeneration(
        engine=engine,
        request=generation_request,
        completion_id=completion_id,
        include_usage=include_usage,
        on_first_token=metrics.time_to_first_token.observe,
        on_error=lambda error_type: metrics.errors.inc(label_value=error_type),
    )
    if log_content:
        generation = ContentLog(generation, completion_id)
    if slot.held:
        generation = SlotGeneration(generation, slot)
    try:
        _refuse_while_draining(request)  # again: acquiring the slot may have awaited
        await services.hub.start(completion_id, owner, generation)
    except BaseException:
        slot.release()
        raise
    subscription = await services.hub.subscribe(completion_id, 0, owner)
    metrics.streams_total.inc()
    return sse_response(
        subscription,
        stream_id=completion_id,
        retry_ms=services.settings.retry_ms,
        metrics=metrics,
        hub_error_events=hub_error_events,
        close_after_events=services.settings.fault_close_after_events,
    )


def _parse_last_event_id(header: str | None, query: str | None) -> int:
    # The header wins: a browser EventSource reconnecting keeps its original
    # URL (query included) and sends its newest id in the header.
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


@router.get(
    "/{stream_id}/events",
    responses={200: {"content": {"text/event-stream": {}}}, 404: {"description": "Unknown"}},
)
async def stream_events(
    stream_id: StreamIdPath,
    request: Request,
    services: ServicesDep,
    # str with "" for absent, not str | None: a nullable header has no wire form.
    last_event_id_header: Annotated[
        str, Header(alias="Last-Event-ID", max_length=32, pattern=_EVENT_ID_PATTERN)
    ] = "",
    last_event_id: Annotated[str, Query(max_length=32, pattern=_EVENT_ID_PATTERN)] = "",
) -> Response:
    """Replay every event after Last-Event-ID, then follow the stream live."""
    owner = _owner(request, services)
    after = _parse_last_event_id(last_event_id_header, last_event_id)
    subscription = await services.hub.subscribe(stream_id, after, owner)
    return sse_response(
        subscription,
        stream_id=stream_id,
        retry_ms=services.settings.retry_ms,
        metrics=services.metrics,
        hub_error_events=hub_error_events,
        close_after_events=services.settings.fault_close_after_events,
    )


@router.post("/{stream_id}/cancel", responses={404: {"description": "Unknown stream"}})
async def cancel_stream(
    stream_id: StreamIdPath, request: Request, services: ServicesDep
) -> dict[str, Any]:
    """Stop generation now; every subscriber gets a final chunk and ``[DONE]``.

    ``cancelled`` is false when the stream had already finished."""
    owner = _owner(request, services)
    cancelled = await services.hub.cancel(stream_id, owner)
    return {"id": stream_id, "object": "chat.completion.cancellation", "cancelled": cancelled}

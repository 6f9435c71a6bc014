"""``/v1/chat/completions``: start, resume (Last-Event-ID) and cancel streams."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from backend.generation.chat import (
    ChatCompletionGeneration,
    complete,
    hub_error_events,
    new_completion_id,
)
from backend.generation.chat_request import chat_generation_request
from backend.generation.request import RequestLimits
from backend.routes.common import (
    Admission,
    LimitsDep,
    ServicesDep,
    StreamIdPath,
    add_resume_route,
    caller_owner,
)
from backend.schemas.chat import ChatCompletionRequest

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/chat/completions",
    tags=["chat"],
    responses={
        400: {"description": "Invalid request (OpenAI-style error body)"},
        401: {"description": "Missing or wrong API key"},
    },
)


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


@router.post("", responses=_SSE_RESPONSES)
async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, services: ServicesDep, limits: LimitsDep
) -> Response:
    admission = Admission(request, services, limits)
    await admission.check_rate()
    generation_request, engine = chat_generation_request(
        body, services.engines, RequestLimits.from_settings(services.settings)
    )
    reasoning_field = services.settings.reasoning_field
    completion_id = new_completion_id()
    if services.settings.log_content:
        logger.info("%s prompt: %r", completion_id, generation_request.messages)
    deltas = admission.deltas(engine, generation_request, completion_id)
    if not body.stream:
        result = await admission.run(
            lambda: complete(deltas, generation_request.model, completion_id, reasoning_field)
        )
        return JSONResponse(result)
    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    generation = ChatCompletionGeneration(
        deltas=deltas,
        model=generation_request.model,
        completion_id=completion_id,
        include_usage=include_usage,
        reasoning_field=reasoning_field,
    )
    await admission.start(completion_id, generation)
    return await admission.stream(completion_id, 0, hub_error_events)


add_resume_route(router, hub_error_events=hub_error_events)


@router.post("/{stream_id}/cancel", responses={404: {"description": "Unknown stream"}})
async def cancel_stream(
    stream_id: StreamIdPath, request: Request, services: ServicesDep
) -> dict[str, Any]:
    """Stop generation now; every subscriber gets a final chunk and ``[DONE]``.

    ``cancelled`` is false when the stream had already finished."""
    owner = caller_owner(request, services)
    cancelled = await services.hub.cancel(stream_id, owner)
    return {"id": stream_id, "object": "chat.completion.cancellation", "cancelled": cancelled}

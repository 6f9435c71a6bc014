"""``/v1/messages``: Anthropic Messages on the shared hub: start, resume, cancel.

Authenticated by ``x-api-key`` (or ``Authorization: Bearer``) against
``SSECHAT_API_KEYS``; ``anthropic-version`` and ``anthropic-beta`` headers
are accepted and change nothing. Every error, before the stream or in it, is
in Anthropic's shape (``backend.errors`` chooses by path). The stream's
keep-alive is Anthropic's ``event: ping``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from backend.engines.base import Engine, GenerationRequest, ToolSpec
from backend.errors import APIError
from backend.generation.messages import (
    PING_EVENT,
    MessagesGeneration,
    hub_error_events,
    new_message_id,
    run_to_end,
)
from backend.generation.request import ParamNames, RequestLimits, build_request
from backend.routes.common import (
    Admission,
    LimitsDep,
    ServicesDep,
    StreamIdPath,
    add_resume_route,
    caller_owner,
)
from backend.schemas.messages import MessagesRequest, ThinkingEnabled, to_messages
from backend.services import Services
from backend.sse import encode_event

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/messages", tags=["messages"])


# Anthropic's keep-alive: a ping event, without an id (it is not one of the stream's events).
PING = encode_event(PING_EVENT[1], event=PING_EVENT[0])

# How the Messages API names the fields an engine may refuse.
MESSAGES_PARAMS = ParamNames(
    messages="messages",
    max_tokens="max_tokens",
    stop="stop_sequences",
    tool="tools[{index}]",
    tool_parameters="input_schema",
    renames=(
        ("messages.content", "messages"),
        ("reasoning_budget_tokens", "thinking"),
        ("parallel_tool_calls", "tool_choice.disable_parallel_tool_use"),
        ("user", "metadata.user_id"),
    ),
)

_TOOL_CHOICES = {"auto": "auto", "any": "required", "none": "none"}

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The Message object, or with `stream: true` an SSE stream of "
        "Anthropic events",
        "content": {"application/json": {}, "text/event-stream": {}},
    },
    400: {"description": "Invalid request (Anthropic error body)"},
    401: {"description": "Missing or wrong API key"},
    404: {"description": "Unknown model"},
    429: {"description": "Rate limit or concurrent-stream cap reached (see Retry-After)"},
    503: {"description": "At capacity, or shutting down"},
}


def _generation_request(
    body: MessagesRequest, services: Services
) -> tuple[GenerationRequest, Engine]:
    fields: dict[str, Any] = {
        "temperature": body.temperature,
        "top_p": body.top_p,
        "top_k": body.top_k,
        "tools": tuple(
            ToolSpec(tool.name, tool.description, tool.input_schema) for tool in body.tools or ()
        ),
        "user": body.metadata.user_id if body.metadata else None,
    }
    choice = body.tool_choice
    if choice is not None:
        if choice.type == "tool":
            if choice.name is None:
                raise APIError(
                    400, "tool_choice.name: required when type is 'tool'.", param="tool_choice"
                )
            fields["tool_choice"] = choice.name
        else:
            fields["tool_choice"] = _TOOL_CHOICES[choice.type]
        if choice.disable_parallel_tool_use:
            fields["parallel_tool_calls"] = False
    if isinstance(body.thinking, ThinkingEnabled):
        if body.thinking.budget_tokens >= body.max_tokens:
            raise APIError(
                400,
                "thinking.budget_tokens must be less than max_tokens.",
                code="invalid_value",
                param="thinking.budget_tokens",
            )
        fields["reasoning_budget_tokens"] = body.thinking.budget_tokens
    return build_request(
        messages=to_messages(body),
        model=body.model,
        engines=services.engines,
        limits=RequestLimits.from_settings(services.settings),
        max_tokens=body.max_tokens,
        stop=body.stop_sequences or (),
        params=MESSAGES_PARAMS,
        **fields,
    )


@router.post("", responses=_RESPONSES)
async def create_message(
    body: MessagesRequest, request: Request, services: ServicesDep, limits: LimitsDep
) -> Response:
    admission = Admission(request, services, limits)
    await admission.check_rate()
    generation_request, engine = _generation_request(body, services)
    message_id = new_message_id()
    if services.settings.log_content:
        logger.info("%s prompt: %r", message_id, generation_request.messages)
    generation = MessagesGeneration(
        deltas=admission.deltas(engine, generation_request, message_id),
        model=generation_request.model,
        message_id=message_id,
    )
    if not body.stream:
        result = await admission.run(lambda: run_to_end(generation))
        return JSONResponse(result)
    await admission.start(message_id, generation)
    return await admission.stream(message_id, 0, hub_error_events, keepalive=PING)


add_resume_route(router, hub_error_events=hub_error_events, keepalive=PING)


@router.post("/{stream_id}/cancel", responses={404: {"description": "Unknown stream"}})
async def cancel_stream(
    stream_id: StreamIdPath, request: Request, services: ServicesDep
) -> dict[str, Any]:
    """Stop generation now: the stream closes its open block and ends with a
    ``message_delta`` whose ``stop_reason`` is null, then ``message_stop``.

    ``cancelled`` is false when the stream had already finished."""
    owner = caller_owner(request, services)
    cancelled = await services.hub.cancel(stream_id, owner)
    return {"id": stream_id, "type": "message_cancellation", "cancelled": cancelled}

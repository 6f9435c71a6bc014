"""From a ``POST /v1/responses`` body to what the route runs: refusals the
Responses API makes by name, the conversation a ``previous_response_id``
continues, the ``GenerationRequest`` (through ``build_request``, with the
Responses spelling of refused fields), the Response object's echo of the
request, and, for an upstream that speaks the Responses API, the body it gets.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from backend.engines.base import ChatMessage, Engine, GenerationRequest, ResponseFormat, ToolSpec
from backend.errors import APIError
from backend.generation.request import ParamNames, RequestLimits, build_request
from backend.generation.response_object import TERMINAL
from backend.schemas.responses import (
    INCLUDE_LOGPROBS,
    SUPPORTED_INCLUDES,
    ResponsesRequest,
    ToolChoiceFunction,
    stored_messages,
    to_messages,
)
from backend.services import Services
from backend.store.base import ResponseStore, StoredResponse

# How the Responses API names the fields an engine may refuse.
RESPONSES_PARAMS = ParamNames(
    messages="input",
    max_tokens="max_output_tokens",
    stop="stop",
    tool="tools[{index}]",
    response_schema="text.format.schema",
    renames=(
        ("messages.content", "input"),
        ("response_format", "text.format"),
        ("reasoning_effort", "reasoning.effort"),
        ("logprobs", "include"),
        ("verbosity", "text.verbosity"),
    ),
)


def refuse_conflicts(body: ResponsesRequest) -> None:
    """What no engine can do: a background response is read back from the store."""
    if body.background and body.store is False:
        raise APIError(
            400,
            "background responses must be stored: 'store' cannot be false with 'background': true.",
            code="invalid_value",
            param="store",
        )


def refuse_unknown(body: ResponsesRequest) -> None:
    """Fields and ``include`` values a response rendered from deltas cannot honour
    (a relayed one passes them to its upstream, which decides)."""
    unknown = body.unknown_fields()
    if unknown:
        raise APIError(
            400, f"Unknown parameter: '{unknown[0]}'.", code="unknown_parameter", param=unknown[0]
        )
    for value in body.include or ():
        if value not in SUPPORTED_INCLUDES:
            raise APIError(
                400,
                f"include value '{value}' is not supported "
                f"(supported: {', '.join(sorted(SUPPORTED_INCLUDES))}).",
                code="unsupported_parameter",
                param="include",
            )


async def previous_response(
    body: ResponsesRequest, store: ResponseStore, owner: str | None
) -> StoredResponse | None:
    if body.previous_response_id is None:
        return None
    previous = await store.load(body.previous_response_id, owner)
    if previous is None:
        raise APIError(
            404,
            f"Previous response with id '{body.previous_response_id}' not found.",
            code="previous_response_not_found",
            param="previous_response_id",
        )
    status = previous.response.get("status")
    if status not in TERMINAL:
        raise APIError(
            400,
            f"Previous response '{body.previous_response_id}' is still {status}; "
            "continue it once it has finished.",
            code="invalid_value",
            param="previous_response_id",
        )
    return previous


def conversation(previous: StoredResponse | None) -> list[dict[str, Any]]:
    """The items a continuation starts from: the earlier input and output."""
    if previous is None:
        return []
    return [*previous.context, *previous.response.get("output", [])]


def generation_request_for(
    body: ResponsesRequest, earlier: list[dict[str, Any]], services: Services
) -> tuple[GenerationRequest, Engine]:
    messages: list[ChatMessage] = []
    if body.instructions:
        messages.append(ChatMessage(role="system", content=body.instructions))
    messages.extend(stored_messages(earlier))
    if isinstance(body.input, list):
        messages.extend(to_messages(body.input))
    elif body.input:
        messages.append(ChatMessage(role="user", content=body.input))
    if not any(message.role != "system" for message in messages):
        raise APIError(400, "input is empty.", code="invalid_value", param="input")
    fields: dict[str, Any] = {
        "temperature": body.temperature,
        "top_p": body.top_p,
        # Responses' limit counts reasoning too: Chat Completions' max_completion_tokens.
        "max_tokens_field": (
            "max_completion_tokens" if body.max_output_tokens is not None else "max_tokens"
        ),
        "tools": tuple(
            ToolSpec(tool.name, tool.description, tool.parameters or {}, tool.strict)
            for tool in body.tools or ()
        ),
        "tool_choice": (
            body.tool_choice.name
            if isinstance(body.tool_choice, ToolChoiceFunction)
            else body.tool_choice
        ),
        "parallel_tool_calls": body.parallel_tool_calls,
        "logprobs": INCLUDE_LOGPROBS in (body.include or ()),
        "top_logprobs": body.top_logprobs,
        "user": body.user,
        "metadata": body.metadata,
    }
    if body.text is not None and body.text.format is not None:
        text_format = body.text.format
        fields["response_format"] = ResponseFormat(
            text_format.type, text_format.name, text_format.schema_, text_format.strict
        )
    if body.text is not None and body.text.verbosity is not None:
        fields["extra"] = {"verbosity": body.text.verbosity}
    if body.reasoning is not None and body.reasoning.effort is not None:
        fields["reasoning_effort"] = body.reasoning.effort
    return build_request(
        messages=messages,
        model=body.model,
        engines=services.engines,
        limits=RequestLimits.from_settings(services.settings),
        max_tokens=body.max_output_tokens,
        params=RESPONSES_PARAMS,
        **fields,
    )


def response_base(
    body: ResponsesRequest, response_id: str, request: GenerationRequest
) -> dict[str, Any]:
    """The Response object's fields that the request decides (an echo, as OpenAI's)."""
    text = body.text.model_dump(by_alias=True, exclude_none=True) if body.text else {}
    text.setdefault("format", {"type": "text"})
    reasoning = body.reasoning
    tool_choice = body.tool_choice
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "background": bool(body.background),
        "error": None,
        "incomplete_details": None,
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "max_tool_calls": None,
        "model": request.model,
        "output": [],
        "parallel_tool_calls": body.parallel_tool_calls is not False,
        "previous_response_id": body.previous_response_id,
        "reasoning": {
            "effort": reasoning.effort if reasoning else None,
            "summary": (reasoning.summary or reasoning.generate_summary) if reasoning else None,
        },
        "store": body.store is not False,
        # OpenAI echoes its defaults for what was not sent.
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "text": text,
        "tool_choice": (
            tool_choice.model_dump()
            if isinstance(tool_choice, ToolChoiceFunction)
            else tool_choice or "auto"
        ),
        "tools": [tool.model_dump(exclude_none=True) for tool in body.tools or ()],
        "top_logprobs": body.top_logprobs or 0,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "truncation": "disabled",
        "usage": None,
        "user": body.user,
        "metadata": body.metadata or {},
    }


# What ssechat keeps for itself when it relays a request: it runs the upstream's
# response in the foreground and streamed (background runs, resume and the store
# are ssechat's), and sends the whole conversation rather than a previous id
# (the conversation lives in ssechat's store).
_KEPT_FIELDS = frozenset({"stream", "background", "previous_response_id"})


def raw_input_items(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``input`` as the client sent it, as a list of items (a string is one user message)."""
    value = raw.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}] if value else []
    return list(value) if isinstance(value, list) else []


def upstream_body(
    raw: Mapping[str, Any], earlier: list[dict[str, Any]], request: GenerationRequest
) -> dict[str, Any]:
    """The body an upstream that speaks the Responses API gets: the client's, every
    field (unknown ones and ``include`` values too) as sent, except the model
    (resolved), the token limit (the one in force), ``stream`` (always) and the
    fields ssechat keeps."""
    body = {key: value for key, value in raw.items() if key not in _KEPT_FIELDS}
    body["model"] = request.model
    body["max_output_tokens"] = request.max_tokens
    if earlier:
        body["input"] = [*earlier, *raw_input_items(raw)]
    body["stream"] = True
    return body

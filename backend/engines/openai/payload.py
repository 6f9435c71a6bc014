"""``GenerationRequest`` → the JSON body of an upstream ``POST /chat/completions``.

Every field the request carries is forwarded in Chat Completions' own
spelling, and ``request.extra`` (fields ssechat does not model) is merged in
unchanged: the upstream decides what it understands, and its 400 for what it
does not reaches the client as an ``upstream_bad_request`` error naming it.
A field that was not asked for (``None``, empty; ``temperature`` and
``top_p`` included) is left out rather than sent as a default, so the
upstream's own defaults apply. The token limit is always sent (the client's,
or ssechat's default), spelled as the client spelled it: ``max_tokens`` or
``max_completion_tokens`` (which OpenAI's reasoning models require);
Responses' ``max_output_tokens`` becomes ``max_completion_tokens``, its
counterpart (reasoning included); Anthropic's ``max_tokens`` and a request
without a limit use ``max_tokens``.

``reasoning_budget_tokens`` (Anthropic's thinking budget) has no Chat
Completions counterpart; the engine refuses it by name before this runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backend.engines.base import ChatMessage, ContentPart, GenerationRequest, ToolSpec


def build_payload(request: GenerationRequest, *, include_usage: bool) -> dict[str, Any]:
    """The streamed request body; ``include_usage`` adds ``stream_options``."""
    ours: dict[str, Any] = {
        "model": request.model,
        "messages": [message_payload(message) for message in request.messages],
        "stream": True,
        request.max_tokens_field: request.max_tokens,
    }
    optional: dict[str, Any] = {
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "stop": list(request.stop) or None,
        "tools": [_tool(tool) for tool in request.tools] or None,
        "tool_choice": _tool_choice(request.tool_choice),
        "parallel_tool_calls": request.parallel_tool_calls,
        "response_format": _response_format(request),
        "reasoning_effort": request.reasoning_effort,
        "logprobs": True if request.logprobs else None,
        "top_logprobs": request.top_logprobs,
        # Not in OpenAI's API, but vLLM, llama.cpp, Ollama and TGI take it.
        "top_k": request.top_k,
        "presence_penalty": request.presence_penalty,
        "frequency_penalty": request.frequency_penalty,
        "logit_bias": _plain(request.logit_bias),
        "user": request.user,
        "metadata": _plain(request.metadata),
    }
    ours.update((key, value) for key, value in optional.items() if value is not None)
    # Some upstreams reject unknown fields, hence the per-upstream switch.
    if include_usage:
        ours["stream_options"] = {"include_usage": True}
    # Fields we model win over an unknown field of the same name (there should be none).
    return {**_plain(request.extra), **ours}


def message_payload(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role}
    if message.parts:
        out["content"] = _content_parts(message)
    elif message.tool_calls and not message.content:
        out["content"] = None  # an assistant turn that only called tools
    else:
        out["content"] = message.content
    if message.name is not None:
        out["name"] = message.name
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _content_parts(message: ChatMessage) -> list[dict[str, Any]]:
    """The content as a list of parts, in the order the client gave when it can be known.

    When ``parts`` holds text parts too, it is the whole content in order.
    Otherwise the joined text goes first, then the non-text parts.
    """
    parts = [_part(part) for part in message.parts]
    if any(part.type == "text" for part in message.parts) or not message.content:
        return parts
    return [{"type": "text", "text": message.content}, *parts]


def _part(part: ContentPart) -> dict[str, Any]:
    """A part in Chat Completions shape: ``data`` is either the whole part (it has
    the ``type``) or the object under its type key (``{"url": …}`` for image_url)."""
    if part.data.get("type") == part.type:
        return dict(_plain(part.data))
    if part.type == "text":
        return {"type": "text", "text": str(part.data.get("text", ""))}
    return {"type": part.type, part.type: _plain(part.data)}


def _plain(value: Any) -> Any:
    """JSON-ready copy: any ``Mapping`` (frozen ones too) as a dict, tuples as lists."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _tool(tool: ToolSpec) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    if tool.parameters:
        function["parameters"] = _plain(tool.parameters)
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_choice(choice: str | None) -> str | dict[str, Any] | None:
    if choice is None or choice in ("none", "auto", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _response_format(request: GenerationRequest) -> dict[str, Any] | None:
    response_format = request.response_format
    if response_format is None:
        return None
    if response_format.type != "json_schema":
        return {"type": response_format.type}
    spec: dict[str, Any] = {}
    if response_format.name is not None:
        spec["name"] = response_format.name
    if response_format.schema is not None:
        spec["schema"] = _plain(response_format.schema)
    if response_format.strict is not None:
        spec["strict"] = response_format.strict
    return {"type": "json_schema", "json_schema": spec}

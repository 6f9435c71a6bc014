"""A Chat Completions request body into a ``GenerationRequest`` and its engine.

The schema (``backend.schemas.chat``) has checked the shapes; this module
reads the fields whose JSON is open (``tool_choice``, ``response_format``),
applies the rules that depend on the role of a message, and hands the rest to
``build_request`` (limits, whole-request checks, model, engine). Every error
is a 400 naming the field as OpenAI spells it (``messages[2].tool_call_id``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from backend.engines.base import (
    ChatMessage,
    ContentPart,
    Engine,
    GenerationRequest,
    ResponseFormat,
    ToolCall,
    ToolSpec,
)
from backend.engines.registry import EngineSet
from backend.generation.checks import invalid
from backend.generation.request import RequestLimits, build_request
from backend.schemas.chat import NAME_PATTERN, ChatCompletionRequest, MessageIn, ToolIn

# Part types that are text, whoever reads them; anything else is content a
# text-only engine cannot read.
_TEXT_PARTS = frozenset({"text", "refusal"})
# Which roles may send which part types (OpenAI's message types).
_PARTS_BY_ROLE: dict[str, frozenset[str]] = {
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "assistant": frozenset({"text", "refusal"}),
    "tool": frozenset({"text"}),
}
_JSON_SCHEMA_KEYS = frozenset({"name", "description", "schema", "strict"})


def chat_generation_request(
    body: ChatCompletionRequest, engines: EngineSet, limits: RequestLimits
) -> tuple[GenerationRequest, Engine]:
    if body.n not in (None, 1):
        raise invalid(
            f"n is {body.n}: ssechat answers with one choice per request; send n: 1 or leave "
            "it out (ask several times for several answers).",
            "n",
            code="unsupported_value",
        )
    if body.top_logprobs is not None and not body.logprobs:
        raise invalid("top_logprobs needs logprobs: true.", "top_logprobs")
    stop: tuple[str, ...] = ()
    if isinstance(body.stop, str):
        stop = (body.stop,)
    elif body.stop:
        stop = tuple(body.stop)
    tools = tuple(_tool(index, tool) for index, tool in enumerate(body.tools or ()))
    tools, tool_choice = _tool_choice(body.tool_choice, tools)
    return build_request(
        messages=[_message(index, message) for index, message in enumerate(body.messages)],
        model=body.model,
        engines=engines,
        limits=limits,
        max_tokens=body.max_completion_tokens or body.max_tokens,
        max_tokens_field=(
            "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        ),
        stop=stop,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed,
        tools=tools,
        tool_choice=tool_choice,
        parallel_tool_calls=body.parallel_tool_calls,
        response_format=_response_format(body.response_format),
        reasoning_effort=body.reasoning_effort,
        logprobs=bool(body.logprobs),
        top_logprobs=body.top_logprobs,
        top_k=body.top_k,
        presence_penalty=body.presence_penalty,
        frequency_penalty=body.frequency_penalty,
        logit_bias=body.logit_bias,
        user=body.user,
        metadata=body.metadata,
        extra=_unknown(body.model_extra),
    )


def _unknown(fields: Mapping[str, Any] | None) -> dict[str, Any]:
    """Fields the schema does not know; ``null`` asks for nothing (OpenAI's "unset")."""
    return {key: value for key, value in (fields or {}).items() if value is not None}


def _message(index: int, message: MessageIn) -> ChatMessage:
    where = f"messages[{index}]"
    if message.tool_calls and message.role != "assistant":
        raise invalid(
            f"{where}.tool_calls: only assistant messages carry tool calls.",
            f"{where}.tool_calls",
        )
    if message.role == "tool" and not message.tool_call_id:
        raise invalid(
            f"{where}: a message with role 'tool' needs the 'tool_call_id' it answers.",
            f"{where}.tool_call_id",
        )
    if message.tool_call_id is not None and message.role != "tool":
        raise invalid(
            f"{where}.tool_call_id: only tool messages answer a tool call.",
            f"{where}.tool_call_id",
        )
    parts: tuple[ContentPart, ...] = ()
    if isinstance(message.content, list):
        allowed = _PARTS_BY_ROLE[message.role]
        for position, part in enumerate(message.content):
            if part.type not in allowed:
                kinds = ", ".join(sorted(allowed))
                raise invalid(
                    f"{where}.content[{position}]: a '{part.type}' part cannot be sent in "
                    f"a {message.role} message (it takes: {kinds}).",
                    f"{where}.content[{position}].type",
                )
        # Kept whole when there is more than text, so an upstream gets the parts as sent.
        if any(part.type not in _TEXT_PARTS or part.model_extra for part in message.content):
            parts = tuple(ContentPart(part.type, part.whole()) for part in message.content)
    return ChatMessage(
        role=message.role,
        content=message.text(),
        parts=parts,
        tool_calls=tuple(
            ToolCall(call.id, call.function.name, call.function.arguments)
            for call in message.tool_calls or ()
        ),
        tool_call_id=message.tool_call_id,
        name=message.name,
        reasoning=message.reasoning_content or message.reasoning or "",
        extra=_unknown(message.model_extra),
    )


def _tool(index: int, tool: ToolIn) -> ToolSpec:
    where = f"tools[{index}]"
    if tool.type != "function":
        raise invalid(
            f"{where}.type is '{tool.type}': only function tools are supported.",
            f"{where}.type",
            code="unsupported_parameter",
        )
    if tool.function is None:
        raise invalid(f"{where}: a function tool needs 'function'.", f"{where}.function")
    function = tool.function
    return ToolSpec(
        name=function.name,
        description=function.description,
        parameters=function.parameters if function.parameters is not None else {},
        strict=function.strict,
    )


def _tool_choice(
    choice: str | dict[str, Any] | None, tools: tuple[ToolSpec, ...]
) -> tuple[tuple[ToolSpec, ...], str | None]:
    """(the tools the model may call, the choice): ``allowed_tools`` narrows the tools."""
    if choice is None:
        return tools, None
    if isinstance(choice, str):
        if choice not in ("none", "auto", "required"):
            raise invalid(
                f"tool_choice is '{choice}': use 'none', 'auto', 'required', or "
                '{"type": "function", "function": {"name": …}}.',
                "tool_choice",
            )
        return tools, choice
    kind = choice.get("type")
    if kind == "function":
        name = _function_name(choice.get("function"), "tool_choice.function")
        return tools, name
    if kind == "allowed_tools":
        return _allowed_tools(choice.get("allowed_tools"), tools)
    if kind == "custom":
        raise invalid(
            "tool_choice: custom tools are not supported (only function tools).",
            "tool_choice.type",
            code="unsupported_parameter",
        )
    raise invalid("tool_choice.type must be 'function' or 'allowed_tools'.", "tool_choice.type")


def _function_name(function: Any, where: str) -> str:
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or re.fullmatch(NAME_PATTERN, name) is None:
        raise invalid(f"{where}.name must be a function name (a-z, A-Z, 0-9, _ and -).", where)
    return name


def _allowed_tools(allowed: Any, tools: tuple[ToolSpec, ...]) -> tuple[tuple[ToolSpec, ...], str]:
    where = "tool_choice.allowed_tools"
    if not isinstance(allowed, dict) or allowed.get("mode") not in ("auto", "required"):
        raise invalid(f"{where}.mode must be 'auto' or 'required'.", f"{where}.mode")
    listed = allowed.get("tools")
    if not isinstance(listed, list) or not listed:
        raise invalid(f"{where}.tools must be a non-empty array of tools.", f"{where}.tools")
    defined = {tool.name: tool for tool in tools}
    names: list[str] = []
    for position, item in enumerate(listed):
        spot = f"{where}.tools[{position}]"
        if not isinstance(item, dict) or item.get("type") != "function":
            raise invalid(f"{spot} must be a function tool.", spot)
        name = _function_name(item.get("function"), f"{spot}.function")
        if name not in defined:
            raise invalid(f"{spot} names '{name}', which is not among the tools defined.", spot)
        names.append(name)
    mode: str = allowed["mode"]
    return tuple(defined[name] for name in dict.fromkeys(names)), mode


def _response_format(form: dict[str, Any] | None) -> ResponseFormat | None:
    if form is None:
        return None
    kind = form.get("type")
    if kind in ("text", "json_object"):
        return ResponseFormat(kind)
    if kind != "json_schema":
        raise invalid(
            "response_format.type must be 'text', 'json_object' or 'json_schema'.",
            "response_format.type",
        )
    spec = form.get("json_schema")
    where = "response_format.json_schema"
    if not isinstance(spec, dict):
        raise invalid(f"{where} is required for type 'json_schema' (an object).", where)
    unknown = sorted(set(spec) - _JSON_SCHEMA_KEYS)
    if unknown:
        raise invalid(f"{where}: unknown field '{unknown[0]}'.", f"{where}.{unknown[0]}")
    name = spec.get("name")
    if not isinstance(name, str) or re.fullmatch(NAME_PATTERN, name) is None:
        raise invalid(
            f"{where}.name is required: 1 to 64 of a-z, A-Z, 0-9, _ and -.", f"{where}.name"
        )
    schema = spec.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise invalid(f"{where}.schema must be a JSON Schema (an object).", f"{where}.schema")
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid(f"{where}.strict must be a boolean.", f"{where}.strict")
    description = spec.get("description")
    if description is not None and not isinstance(description, str):
        raise invalid(f"{where}.description must be a string.", f"{where}.description")
    return ResponseFormat("json_schema", name, schema, strict, description)

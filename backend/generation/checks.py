"""Checks that need a request as a whole, the same for every dialect.

Shapes are checked by each dialect's schema on entry; what only the whole
request can tell is checked here, once, on the dialect-neutral
``GenerationRequest``: tool definitions (unique names, parameters that are a
JSON Schema for an object), a ``tool_choice`` that names a defined tool, tool
results that answer the calls before them, and a ``json_schema`` response
format that is a JSON Schema. Each error names the field as the caller's
dialect spells it (``ParamNames``).
"""

from __future__ import annotations

from backend.engines.base import GenerationRequest
from backend.engines.json_schema import schema_problem
from backend.errors import APIError
from backend.generation.params import CHAT_PARAMS, ParamNames


def invalid(message: str, param: str, code: str = "invalid_value") -> APIError:
    return APIError(400, message, code=code, param=param)


def check_request(request: GenerationRequest, params: ParamNames = CHAT_PARAMS) -> None:
    """Raise a 400 ``APIError`` naming the field for what only the whole request shows."""
    _check_tools(request, params)
    _check_tool_choice(request, params)
    _check_tool_results(request, params)
    _check_response_format(request, params)


def _check_tools(request: GenerationRequest, params: ParamNames) -> None:
    seen: dict[str, int] = {}
    for index, tool in enumerate(request.tools):
        if tool.name in seen:
            raise invalid(
                f"Tool names must be unique: '{tool.name}' is defined twice "
                f"({params.tool.format(index=seen[tool.name])} and "
                f"{params.tool.format(index=index)}).",
                params.tool_field(index, "name"),
            )
        seen[tool.name] = index
        param = params.tool_field(index, params.tool_parameters)
        problem = schema_problem(tool.parameters)
        if problem is not None:
            raise invalid(
                f"Invalid schema for function '{tool.name}': {param} is not a valid JSON "
                f"Schema: {problem}.",
                param,
                code="invalid_function_parameters",
            )
        kind = tool.parameters.get("type", "object")
        if kind != "object":
            raise invalid(
                f"Invalid schema for function '{tool.name}': {param} must be a JSON Schema "
                f"of 'type: \"object\"', got 'type: {kind!r}'.",
                param,
                code="invalid_function_parameters",
            )


def _check_tool_choice(request: GenerationRequest, params: ParamNames) -> None:
    choice = request.tool_choice
    if choice is None or choice in ("none", "auto"):
        return
    if not request.tools:
        raise invalid(
            f"{params.tool_choice} {choice!r} needs tools: the request defines none.",
            params.tool_choice,
        )
    if choice != "required" and all(tool.name != choice for tool in request.tools):
        defined = ", ".join(tool.name for tool in request.tools)
        raise invalid(
            f"{params.tool_choice} names the tool '{choice}', which is not among the "
            f"tools defined ({defined}).",
            params.tool_choice,
        )


def _check_tool_results(request: GenerationRequest, params: ParamNames) -> None:
    """Each tool result answers a call of the assistant message it follows, and
    every call is answered before the conversation goes on."""
    open_calls: set[str] = set()
    caller: int | None = None  # the assistant message whose calls are being answered

    def unanswered() -> APIError:
        assert caller is not None
        ids = ", ".join(sorted(open_calls))
        return invalid(
            f"An assistant message with tool calls must be followed by tool messages "
            f"answering each call; {params.message.format(index=caller)} has no answer "
            f"for: {ids}.",
            params.message_field(caller, "tool_calls"),
        )

    for index, message in enumerate(request.messages):
        if message.role == "tool":
            if caller is None:
                raise invalid(
                    f"A message with role 'tool' must answer a tool call of the assistant "
                    f"message before it; {params.message.format(index=index)} follows none.",
                    params.message_field(index, "role"),
                )
            if message.tool_call_id not in open_calls:
                answered = message.tool_call_id in [
                    call.id for call in request.messages[caller].tool_calls
                ]
                why = "answers a call already answered" if answered else "matches no call"
                raise invalid(
                    f"{params.message_field(index, 'tool_call_id')} "
                    f"'{message.tool_call_id}' {why} of "
                    f"{params.message.format(index=caller)}.",
                    params.message_field(index, "tool_call_id"),
                )
            open_calls.discard(message.tool_call_id)
            continue
        if open_calls:
            raise unanswered()
        caller = None
        if message.tool_calls:
            ids = [call.id for call in message.tool_calls]
            if len(set(ids)) != len(ids):
                raise invalid(
                    f"Tool call ids must be unique within {params.message.format(index=index)}.",
                    params.message_field(index, "tool_calls"),
                )
            caller, open_calls = index, set(ids)
    if open_calls:
        raise unanswered()


def _check_response_format(request: GenerationRequest, params: ParamNames) -> None:
    form = request.response_format
    if form is None or form.type != "json_schema" or form.schema is None:
        return
    problem = schema_problem(form.schema)
    if problem is not None:
        raise invalid(
            f"Invalid schema for response_format '{form.name}': {params.response_schema} "
            f"is not a valid JSON Schema: {problem}.",
            params.response_schema,
        )

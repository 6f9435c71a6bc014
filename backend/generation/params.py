"""How each dialect names the request fields an error may point at."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ParamNames:
    """How the caller's dialect names the fields an error may point at.

    ``message`` and ``tool`` are formats taking the position of the message or
    tool (as in ``GenerationRequest``); the defaults are Chat Completions'.
    """

    messages: str = "messages"
    message: str = "messages[{index}]"
    max_tokens: str = "max_tokens"
    stop: str = "stop"
    tool: str = "tools[{index}].function"
    tool_parameters: str = "parameters"
    tool_choice: str = "tool_choice"
    response_schema: str = "response_format.json_schema.schema"
    # Request-field names (GenerationRequest's, as Engine.check reports them)
    # mapped to the dialect's own, e.g. {"tools": "tools", "response_format": "text.format"}.
    renames: tuple[tuple[str, str], ...] = ()

    def rename(self, param: str | None) -> str | None:
        return dict(self.renames).get(param, param) if param is not None else None

    def message_field(self, index: int, name: str) -> str:
        return f"{self.message.format(index=index)}.{name}"

    def tool_field(self, index: int, name: str) -> str:
        return f"{self.tool.format(index=index)}.{name}"


CHAT_PARAMS = ParamNames()

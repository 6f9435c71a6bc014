"""How each dialect names the request fields an error may point at."""

from __future__ import annotations

import re
from dataclasses import dataclass

# How engines and the whole-request checks name indexed fields: Chat Completions'
# spelling, as ``GenerationRequest`` mirrors it.
_TOOL_FIELD = re.compile(r"tools\[(\d+)\]\.function\.(\w+)")
_RESPONSE_SCHEMA = "response_format.json_schema.schema"


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
    response_schema: str = _RESPONSE_SCHEMA
    # Request-field names (GenerationRequest's, as Engine.check reports them)
    # mapped to the dialect's own, e.g. {"tools": "tools", "response_format": "text.format"}.
    renames: tuple[tuple[str, str], ...] = ()

    def rename(self, param: str | None) -> str | None:
        """A field named the Chat Completions way (as engines name what they refuse),
        in this dialect's spelling: exact renames, a tool's fields, the response schema."""
        if param is None:
            return None
        renamed = dict(self.renames).get(param)
        if renamed is not None:
            return renamed
        if param == _RESPONSE_SCHEMA:
            return self.response_schema
        tool = _TOOL_FIELD.fullmatch(param)
        if tool is not None:
            name = tool.group(2)
            return self.tool_field(
                int(tool.group(1)), self.tool_parameters if name == "parameters" else name
            )
        return param

    def message_field(self, index: int, name: str) -> str:
        return f"{self.message.format(index=index)}.{name}"

    def tool_field(self, index: int, name: str) -> str:
        return f"{self.tool.format(index=index)}.{name}"


CHAT_PARAMS = ParamNames()

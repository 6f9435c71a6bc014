"""The OpenAI Responses request body (``POST /v1/responses``), validated on entry.

Fields outside this model are kept (``extra="allow"``) so the route can
refuse each by name, as OpenAI's API does (400 ``unknown_parameter``);
nested objects forbid unknown keys, which pydantic names in its error.
``to_messages`` turns ``input`` (a string, or message / ``function_call`` /
``function_call_output`` / ``reasoning`` items) into dialect-neutral
``ChatMessage``s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter

from backend.engines.base import ChatMessage, ContentPart, ToolCall
from backend.errors import APIError
from backend.schemas.common import JSONInt, StrictBool, StrictFloat

_STRICT = ConfigDict(extra="forbid")

# ``include`` values we honour: logprobs of output text (the engine must support
# them, or it refuses ``include``). Others ask for data we never produce.
INCLUDE_LOGPROBS = "message.output_text.logprobs"
SUPPORTED_INCLUDES = frozenset({INCLUDE_LOGPROBS})


# -- input content parts ----------------------------------------------------------------------
class InputText(BaseModel):
    model_config = _STRICT
    type: Literal["input_text"]
    text: str


class OutputText(BaseModel):
    """Assistant text given back as history (what our own output items hold)."""

    model_config = ConfigDict(extra="ignore")  # annotations, logprobs: echoes of our output
    type: Literal["output_text"]
    text: str


class Refusal(BaseModel):
    model_config = _STRICT
    type: Literal["refusal"]
    refusal: str


class InputImage(BaseModel):
    model_config = _STRICT
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto"] = "auto"


class InputFile(BaseModel):
    model_config = _STRICT
    type: Literal["input_file"]
    file_data: str | None = None
    file_id: str | None = None
    file_url: str | None = None
    filename: str | None = None


ContentPartIn = Annotated[
    InputText | OutputText | Refusal | InputImage | InputFile, Field(discriminator="type")
]


# -- input items ------------------------------------------------------------------------------
class MessageItem(BaseModel):
    model_config = ConfigDict(extra="ignore")  # id, status: echoes of our own output items
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPartIn]


class FunctionCallItem(BaseModel):
    model_config = ConfigDict(extra="ignore")  # id, status: echoes of our own output items
    type: Literal["function_call"]
    call_id: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=256)
    arguments: str


class FunctionCallOutputItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=256)
    output: str | list[ContentPartIn]


class ReasoningItem(BaseModel):
    """Reasoning given back: accepted, not sent to the engine (no engine takes
    reasoning as input; OpenAI likewise uses it only within one tool loop)."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["reasoning"]


InputItem = Annotated[
    MessageItem | FunctionCallItem | FunctionCallOutputItem | ReasoningItem,
    Field(discriminator="type"),
]


def _message_type(value: Any) -> Any:
    """An item without ``type`` but with a ``role`` is a message (EasyInputMessage)."""
    if isinstance(value, dict) and "type" not in value and "role" in value:
        return {**value, "type": "message"}
    return value


# -- the rest of the request ------------------------------------------------------------------
class FunctionTool(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class ToolChoiceFunction(BaseModel):
    model_config = _STRICT
    type: Literal["function"]
    name: str = Field(min_length=1, max_length=64)


class TextFormat(BaseModel):
    model_config = _STRICT
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(default=None, max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: StrictBool | None = None


class TextConfig(BaseModel):
    model_config = _STRICT
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class ReasoningConfig(BaseModel):
    model_config = _STRICT
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None  # deprecated name


class StreamOptions(BaseModel):
    model_config = _STRICT
    # We never add obfuscation padding, so either value gives the same events.
    include_obfuscation: StrictBool | None = None


class ResponsesRequest(BaseModel):
    """What ``POST /v1/responses`` takes; ``model_extra`` holds unknown fields."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, max_length=256)
    input: str | list[Annotated[InputItem, BeforeValidator(_message_type)]] = ""
    instructions: str | None = None
    max_output_tokens: JSONInt | None = Field(default=None, ge=1)
    temperature: StrictFloat | None = Field(default=None, ge=0.0, le=2.0)
    top_p: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)
    top_logprobs: JSONInt | None = Field(default=None, ge=0, le=20)
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: StrictBool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    background: StrictBool | None = False
    store: StrictBool | None = True
    previous_response_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$"
    )
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(
        default=None, max_length=16
    )
    include: list[str] | None = None
    truncation: Literal["disabled"] | None = None
    user: str | None = Field(default=None, max_length=256)

    def unknown_fields(self) -> list[str]:
        return sorted(self.model_extra or {})


ITEMS = TypeAdapter(list[Annotated[InputItem, BeforeValidator(_message_type)]])


def input_items(request: ResponsesRequest) -> list[dict[str, Any]]:
    """``input`` as a list of item objects (a string is one user message), for the
    stored conversation that ``previous_response_id`` continues."""
    if isinstance(request.input, str):
        if not request.input:
            return []
        return [{"type": "message", "role": "user", "content": request.input}]
    return [
        item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in request.input
    ]


def _bad(param: str, message: str, code: str = "invalid_value") -> APIError:
    return APIError(400, message, code=code, param=param)


def _parts(
    parts: Sequence[InputText | OutputText | Refusal | InputImage | InputFile], where: str
) -> tuple[str, tuple[ContentPart, ...]]:
    """The text of a content list (text parts joined) and its non-text parts."""
    text: list[str] = []
    others: list[ContentPart] = []
    for index, part in enumerate(parts):
        param = f"{where}[{index}]"
        if isinstance(part, InputText | OutputText):
            text.append(part.text)
        elif isinstance(part, Refusal):
            text.append(part.refusal)
        elif isinstance(part, InputImage):
            if part.image_url is None:
                raise _bad(
                    f"{param}.file_id" if part.file_id else f"{param}.image_url",
                    "Images need image_url (a URL or a data: URL); file ids are not supported.",
                    "unsupported_parameter" if part.file_id else "invalid_value",
                )
            others.append(ContentPart("image_url", {"url": part.image_url, "detail": part.detail}))
        else:
            if part.file_data is None:
                raise _bad(
                    f"{param}.file_data",
                    "Files need file_data (base64); file_id and file_url are not supported.",
                    "unsupported_parameter",
                )
            file: dict[str, str] = {"file_data": part.file_data}
            if part.filename is not None:
                file["filename"] = part.filename
            others.append(ContentPart("file", {"file": file}))
    return "".join(text), tuple(others)


def to_messages(items: Iterable[Any], where: str = "input") -> list[ChatMessage]:
    """Parsed input items as chat messages: ``function_call`` items join the
    assistant turn before them, ``function_call_output`` items become tool
    messages, reasoning items are skipped."""
    messages: list[ChatMessage] = []
    for index, item in enumerate(items):
        param = f"{where}[{index}]"
        if isinstance(item, MessageItem):
            parts: tuple[ContentPart, ...] = ()
            if isinstance(item.content, str):
                text = item.content
            else:
                text, parts = _parts(item.content, f"{param}.content")
            messages.append(ChatMessage(role=item.role, content=text, parts=parts))
        elif isinstance(item, FunctionCallItem):
            call = ToolCall(id=item.call_id, name=item.name, arguments=item.arguments)
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                messages[-1] = ChatMessage(
                    role="assistant",
                    content=last.content,
                    parts=last.parts,
                    tool_calls=(*last.tool_calls, call),
                )
            else:
                messages.append(ChatMessage(role="assistant", content="", tool_calls=(call,)))
        elif isinstance(item, FunctionCallOutputItem):
            parts = ()
            if isinstance(item.output, str):
                text = item.output
            else:
                text, parts = _parts(item.output, f"{param}.output")
            messages.append(
                ChatMessage(role="tool", content=text, parts=parts, tool_call_id=item.call_id)
            )
    return messages


# Item types ``to_messages`` reads (a message may come without a type).
_MODELLED_ITEMS = frozenset({"message", "function_call", "function_call_output", "reasoning"})


def stored_messages(items: Sequence[Mapping[str, Any]]) -> list[ChatMessage]:
    """Chat messages for a stored conversation (items we validated when they came in,
    and output items we or a relayed upstream produced). Items of kinds ssechat does
    not model (an upstream's hosted tool calls) are left out: an engine of ours could
    not read them."""
    kept = [item for item in items if item.get("type", "message") in _MODELLED_ITEMS]
    return to_messages(ITEMS.validate_python(kept), "previous_response_id")

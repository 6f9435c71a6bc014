"""The Chat Completions request body (pydantic, validated on entry).

The whole request the official SDK sends is modelled here, by shape. What
needs the request as a whole (a named ``tool_choice`` naming a defined tool,
a ``tool`` message answering a call, a JSON Schema that is one) is checked
once the request is built (``backend.generation.checks``). Top-level fields
this schema does not know are kept (``model_extra``) and travel to the engine
in ``GenerationRequest.extra``: an upstream may understand them, every other
engine refuses them by name. The same holds for unknown message fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from backend.schemas.common import JSONInt, StrictBool, StrictFloat

# OpenAI's rule for function and schema names.
NAME_PATTERN = r"^[a-zA-Z0-9_-]{1,64}$"
MAX_TOOLS = 128


class ContentPartIn(BaseModel):
    """One content part. Its payload sits under the key its ``type`` names
    (``{"type": "image_url", "image_url": {...}}``); fields beyond the ones
    below (``prompt_cache_breakpoint``, a vendor's ``cache_control``) are kept
    and reach an upstream with the part."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text", "image_url", "input_audio", "file", "refusal"]
    text: str | None = None
    image_url: dict[str, Any] | None = None
    input_audio: dict[str, Any] | None = None
    file: dict[str, Any] | None = None
    refusal: str | None = None

    @model_validator(mode="after")
    def _payload_present(self) -> ContentPartIn:
        payload = getattr(self, self.type)
        if payload is None:
            kind = "a string" if self.type in ("text", "refusal") else "an object"
            raise ValueError(f"a '{self.type}' part needs '{self.type}' ({kind})")
        if self.type == "image_url" and not isinstance(payload.get("url"), str):
            raise ValueError("an 'image_url' part needs 'image_url.url' (a string)")
        return self

    def whole(self) -> dict[str, Any]:
        """The part as the client sent it (unset fields left out)."""
        return self.model_dump(exclude_none=True)


def _content_kind(value: Any) -> str | None:
    if value is None:
        return "none"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list[part]"
    return None


# A string or an array of parts: dispatched on the JSON type, so an error
# names the branch the client meant rather than both.
MessageContent = Annotated[
    Annotated[None, Tag("none")]
    | Annotated[str, Tag("str")]
    | Annotated[list[ContentPartIn], Tag("list[part]")],
    Discriminator(
        _content_kind,
        custom_error_type="invalid_type",
        custom_error_message="must be a string, an array of content parts, or null",
    ),
]


class FunctionCallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=256)
    arguments: str


class ToolCallIn(BaseModel):
    """A tool call in an earlier assistant turn."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: FunctionCallIn


class MessageIn(BaseModel):
    """One message, any role. Role-specific rules (a ``tool`` message needs a
    ``tool_call_id`` …) are checked with the whole conversation in view."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: MessageContent = None
    name: str | None = Field(default=None, max_length=256)
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = Field(default=None, max_length=256)
    refusal: str | None = None
    # An assistant turn's reasoning sent back (DeepSeek's and vLLM's field names).
    reasoning_content: str | None = None
    reasoning: str | None = None
    # What an SDK sends when a response message is passed back as it came.
    annotations: list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text: its string, or its text (and refusal) parts joined."""
        if self.content is None:
            return self.refusal or ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or part.refusal or "" for part in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: StrictBool = False


class FunctionDefinitionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str | None = None
    # A JSON Schema for the arguments; that it is one is checked on building the request.
    parameters: dict[str, Any] | None = None
    strict: StrictBool | None = None


class ToolIn(BaseModel):
    """A tool the model may call. Only function tools exist in ssechat's model;
    another ``type`` (OpenAI's ``custom``) is refused by name."""

    model_config = ConfigDict(extra="forbid")

    type: str
    function: FunctionDefinitionIn | None = None
    custom: dict[str, Any] | None = None


Penalty = Annotated[StrictFloat, Field(ge=-2.0, le=2.0)]


class ChatCompletionRequest(BaseModel):
    """The Chat Completions request, as OpenAI's API defines it; fields we do
    not know are kept for the engine (``model_extra``), never dropped."""

    model_config = ConfigDict(extra="allow")

    messages: list[MessageIn] = Field(min_length=1)
    model: str | None = Field(default=None, max_length=256)
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: JSONInt | None = Field(default=None, ge=1)
    max_completion_tokens: JSONInt | None = Field(default=None, ge=1)
    temperature: StrictFloat | None = Field(default=None, ge=0.0, le=2.0)
    top_p: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)
    seed: JSONInt | None = Field(default=None, ge=-(2**63), le=2**64 - 1)
    stop: str | list[str] | None = None
    n: JSONInt | None = Field(default=None, description="Only 1 is supported (400 otherwise).")
    tools: list[ToolIn] | None = Field(default=None, max_length=MAX_TOOLS)
    # "none" | "auto" | "required", {"type": "function", "function": {"name"}},
    # or {"type": "allowed_tools", "allowed_tools": {"mode", "tools"}}.
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: StrictBool | None = None
    # {"type": "text" | "json_object"} or {"type": "json_schema", "json_schema": {...}}.
    response_format: dict[str, Any] | None = None
    reasoning_effort: Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"] | None = (
        None
    )
    logprobs: StrictBool | None = None
    top_logprobs: JSONInt | None = Field(default=None, ge=0, le=20)
    # Not OpenAI's, but what vLLM, llama.cpp and Ollama's compatible APIs take.
    top_k: JSONInt | None = Field(default=None, ge=0)
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, Annotated[StrictFloat, Field(ge=-100, le=100)]] | None = None
    user: str | None = Field(default=None, max_length=512)
    metadata: (
        dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=512)]] | None
    ) = Field(default=None, max_length=16)

"""The Anthropic Messages request body (``POST /v1/messages``), validated on entry.

Unknown fields are refused, as Anthropic's API does ("Extra inputs are not
permitted", a 400 in Anthropic's error shape: ``backend.errors`` renders by
path). ``cache_control`` is accepted wherever Anthropic takes it and changes
nothing (a caching hint, not part of the answer). ``to_messages`` turns the
conversation into dialect-neutral ``ChatMessage``s: ``tool_result`` blocks
become tool messages, ``tool_use`` blocks the assistant's tool calls, and
earlier ``thinking`` blocks are left out, as Anthropic itself leaves them
out of the context of later turns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.engines.base import ChatMessage, ContentPart, ToolCall
from backend.errors import APIError
from backend.schemas.common import JSONInt, StrictBool, StrictFloat

_STRICT = ConfigDict(extra="forbid")
CacheControl = dict[str, Any] | None


class TextBlock(BaseModel):
    model_config = _STRICT
    type: Literal["text"]
    text: str
    cache_control: CacheControl = None


class Base64Source(BaseModel):
    model_config = _STRICT
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class URLSource(BaseModel):
    model_config = _STRICT
    type: Literal["url"]
    url: str = Field(min_length=1)


class ImageBlock(BaseModel):
    model_config = _STRICT
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]
    cache_control: CacheControl = None

    def part(self) -> ContentPart:
        source = self.source
        if isinstance(source, Base64Source):
            url = f"data:{source.media_type};base64,{source.data}"
        else:
            url = source.url
        return ContentPart("image_url", {"url": url})


class ToolUseBlock(BaseModel):
    model_config = _STRICT
    type: Literal["tool_use"]
    id: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=256)
    input: dict[str, Any]
    cache_control: CacheControl = None


class ToolResultBlock(BaseModel):
    model_config = _STRICT
    type: Literal["tool_result"]
    tool_use_id: str = Field(min_length=1, max_length=256)
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] | None = (
        None
    )
    is_error: StrictBool | None = None
    cache_control: CacheControl = None


class ThinkingBlock(BaseModel):
    model_config = _STRICT
    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(BaseModel):
    model_config = _STRICT
    type: Literal["redacted_thinking"]
    data: str


Block = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class MessageParam(BaseModel):
    model_config = _STRICT
    role: Literal["user", "assistant"]
    content: str | list[Block]


class Tool(BaseModel):
    model_config = _STRICT
    type: Literal["custom"] | None = None
    name: str = Field(min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9_-]{1,128}$")
    description: str | None = None
    input_schema: dict[str, Any]
    cache_control: CacheControl = None


class ToolChoice(BaseModel):
    model_config = _STRICT
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = Field(default=None, min_length=1, max_length=128)
    disable_parallel_tool_use: StrictBool | None = None


class ThinkingEnabled(BaseModel):
    model_config = _STRICT
    type: Literal["enabled"]
    budget_tokens: JSONInt = Field(ge=1024)


class ThinkingDisabled(BaseModel):
    model_config = _STRICT
    type: Literal["disabled"]


class Metadata(BaseModel):
    model_config = _STRICT
    user_id: str | None = Field(default=None, max_length=256)


class MessagesRequest(BaseModel):
    model_config = _STRICT

    # Anthropic requires ``model``; we fall back to the default model instead.
    model: str | None = Field(default=None, max_length=256)
    max_tokens: JSONInt = Field(ge=1)
    messages: list[MessageParam] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)
    top_p: StrictFloat | None = Field(default=None, ge=0.0, le=1.0)
    top_k: JSONInt | None = Field(default=None, ge=0)
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: Annotated[ThinkingEnabled | ThinkingDisabled, Field(discriminator="type")] | None = (
        None
    )
    metadata: Metadata | None = None
    stream: StrictBool = False

    def system_text(self) -> str:
        if self.system is None:
            return ""
        if isinstance(self.system, str):
            return self.system
        return "".join(block.text for block in self.system)


def _tool_result(block: ToolResultBlock) -> ChatMessage:
    parts: tuple[ContentPart, ...] = ()
    if block.content is None:
        text = ""
    elif isinstance(block.content, str):
        text = block.content
    else:
        text = "".join(item.text for item in block.content if isinstance(item, TextBlock))
        parts = tuple(item.part() for item in block.content if isinstance(item, ImageBlock))
    if block.is_error:
        # Chat messages have no error flag: say it in the text the model reads.
        text = f"Error: {text}"
    return ChatMessage(role="tool", content=text, parts=parts, tool_call_id=block.tool_use_id)


def _blocks(
    role: Literal["user", "assistant"], blocks: Sequence[Any], where: str
) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    text: list[str] = []
    parts: list[ContentPart] = []
    calls: list[ToolCall] = []
    for index, block in enumerate(blocks):
        param = f"{where}.content.{index}"
        if isinstance(block, TextBlock):
            text.append(block.text)
        elif isinstance(block, ImageBlock):
            if role == "assistant":
                raise APIError(
                    400, f"{param}: an assistant message cannot hold an image.", param=param
                )
            parts.append(block.part())
        elif isinstance(block, ToolUseBlock):
            if role == "user":
                raise APIError(
                    400, f"{param}: tool_use blocks belong in assistant messages.", param=param
                )
            calls.append(ToolCall(block.id, block.name, json.dumps(block.input)))
        elif isinstance(block, ToolResultBlock):
            if role == "assistant":
                raise APIError(
                    400, f"{param}: tool_result blocks belong in user messages.", param=param
                )
            messages.append(_tool_result(block))
        # Thinking blocks of earlier turns are not part of the next turn's context.
    if text or parts or calls or not messages:
        messages.append(
            ChatMessage(
                role=role, content="".join(text), parts=tuple(parts), tool_calls=tuple(calls)
            )
        )
    return messages


def to_messages(request: MessagesRequest) -> list[ChatMessage]:
    messages: list[ChatMessage] = []
    system = request.system_text()
    if system:
        messages.append(ChatMessage(role="system", content=system))
    for index, message in enumerate(request.messages):
        if isinstance(message.content, str):
            messages.append(ChatMessage(role=message.role, content=message.content))
        else:
            messages.extend(_blocks(message.role, message.content, f"messages.{index}"))
    return messages

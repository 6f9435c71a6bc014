"""The engine protocol: what every model source offers the rest of the backend.

An engine turns a ``GenerationRequest`` into an async stream of ``TokenDelta``:
one dialect-neutral, structured delta type (content, reasoning, tool-call
fragments, refusal, logprobs, and a final delta with the finish reason and
usage). Renderers in ``backend.generation`` turn deltas into each dialect's
payloads; nothing upstream of them knows a wire shape.

Cancellation is plain asyncio cancellation of the consuming task: an engine
must stop producing promptly when the ``await`` it is parked on is cancelled,
and release what it holds (threads, upstream connections) in ``finally``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant", "developer", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "cancelled", "error"]
ToolChoiceMode = Literal["none", "auto", "required"]
MaxTokensField = Literal["max_tokens", "max_completion_tokens"]


# -- requests ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ContentPart:
    """One content part, kept whole as the client sent it in OpenAI Chat
    Completions shape (``data`` is the part object, ``type`` included), so an
    upstream gets it unchanged."""

    type: str  # "text" | "image_url" | "input_audio" | "file"
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call made by the assistant in an earlier turn."""

    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message. ``content`` is always its text (text parts joined), for
    engines that read text only. ``parts`` is empty for a message of plain
    text; when the client sent anything more (an image, audio or file part, or
    a text part with fields beyond its text), it holds every part in order,
    text parts included, so an upstream gets the content as sent."""

    role: Role
    content: str
    parts: tuple[ContentPart, ...] = ()
    tool_calls: tuple[ToolCall, ...] = ()  # assistant messages
    tool_call_id: str | None = None  # tool messages
    name: str | None = None
    # An assistant turn's reasoning, sent back by the client (``reasoning_content``
    # or ``reasoning``): models with interleaved thinking read it; others may ignore it.
    reasoning: str = ""
    # Message fields ssechat does not model, for an upstream that understands them.
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A function tool the model may call."""

    name: str
    description: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)  # JSON Schema
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema: Mapping[str, Any] | None = None
    strict: bool | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What an engine needs to know; already validated by the route.

    Fields beyond the sampling basics default to "not asked for"; an engine
    that cannot honour one that is set refuses it in ``Engine.check`` (a 400
    naming the field), never ignores it. ``extra`` holds request fields
    ssechat does not model, for an upstream that understands them.
    """

    messages: tuple[ChatMessage, ...]
    model: str
    # The token limit in force: the client's, or the server's default when it sent none.
    max_tokens: int
    # How the client spelled its limit, in Chat Completions' terms, so an upstream gets
    # it the same way (OpenAI's reasoning models take only max_completion_tokens).
    # "max_tokens" too when the client sent none (every compatible server takes it).
    max_tokens_field: MaxTokensField = "max_tokens"
    # None: not sent, so the upstream's own default applies; an engine that needs
    # a value uses its own default.
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    tools: tuple[ToolSpec, ...] = ()
    # "none" | "auto" | "required", or the name of the one tool to call.
    tool_choice: ToolChoiceMode | str | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: str | None = None
    reasoning_budget_tokens: int | None = None  # Anthropic "thinking"
    logprobs: bool = False
    top_logprobs: int | None = None
    top_k: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: Mapping[str, float] | None = None
    user: str | None = None
    metadata: Mapping[str, str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


# -- deltas -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int | None = None
    cached_tokens: int | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of a tool call. ``index`` names the call within the answer;
    ``id``, ``type`` and ``name`` come with its first fragment only."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    type: Literal["function"] | None = None


# Not frozen: one is built per token, and a frozen dataclass sets each of its
# fields through object.__setattr__, several times the cost. Treat it as immutable.
@dataclass(slots=True)
class TokenDelta:
    """A piece of what the model produced; the last delta carries ``finish_reason``.

    Every text field is whole characters: engines that produce bytes decode
    them with ``backend.engines.text.Utf8Decoder`` so a character is never split across deltas.
    ``logprobs`` is passed through as the engine got it (OpenAI's shape).
    """

    text: str = ""
    reasoning: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    refusal: str = ""
    logprobs: Mapping[str, Any] | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    # On the final delta of a "stop" finish: the stop sequence that ended the
    # answer, when the engine knows it (Anthropic reports it as ``stop_sequence``).
    stop_sequence: str | None = None


class EngineError(Exception):
    """A failure inside an engine, reported to the client as an error event
    (or, from ``Engine.check``, as a 4xx before streaming)."""

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "engine_error",
        code: str | None = None,
        param: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param


def unsupported(param: str, engine: str, why: str = "") -> EngineError:
    """The one refusal for a request field an engine cannot honour."""
    detail = f": {why}" if why else "."
    return EngineError(
        f"'{param}' is not supported by the {engine} engine{detail}",
        error_type="invalid_request_error",
        code="unsupported_parameter",
        param=param,
    )


def asked_for(request: GenerationRequest) -> list[str]:
    """The request fields beyond plain text sampling that this request sets, by name
    (as the Chat Completions API spells them): what an engine must honour or refuse."""
    asked: list[str] = []
    if request.tools:
        asked.append("tools")
    if request.tool_choice not in (None, "none", "auto"):
        asked.append("tool_choice")
    if request.response_format is not None and request.response_format.type != "text":
        asked.append("response_format")
    if any(message.parts for message in request.messages):
        asked.append("messages.content")
    for name in (
        "reasoning_effort",
        "reasoning_budget_tokens",
        "top_logprobs",
        "top_k",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
    ):
        if getattr(request, name) is not None:
            asked.append(name)
    if request.logprobs:
        asked.append("logprobs")
    asked.extend(sorted(request.extra))
    for index, message in enumerate(request.messages):
        asked.extend(f"messages[{index}].{name}" for name in sorted(message.extra))
    return asked


def refuse_unsupported(request: GenerationRequest, engine: str, supported: frozenset[str]) -> None:
    """``Engine.check`` for an engine that honours only the fields in ``supported``."""
    for param in asked_for(request):
        if param not in supported:
            raise unsupported(param, engine)


class Engine(Protocol):
    """A model source. ``name`` is the engine kind, ``models`` the ids it serves."""

    @property
    def name(self) -> str: ...

    @property
    def models(self) -> tuple[str, ...]: ...

    def check(self, request: GenerationRequest) -> None:
        """Raise ``EngineError`` (``unsupported_parameter``, naming the field) for a
        request this engine cannot honour; called before anything is streamed."""
        ...

    def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        """Yield deltas; the final one has ``finish_reason`` and ``usage`` set."""
        ...

    async def aclose(self) -> None:
        """Release resources (model, connection pools)."""
        ...


class ResponsesUpstream(Protocol):
    """An optional capability: an engine whose upstream may speak the OpenAI
    Responses API itself. ``/v1/responses`` is then relayed natively (the
    upstream's events, items and tool calls unchanged) instead of rendered from
    ``Engine.stream``'s deltas. The engine registry declares which engines have
    it (``EngineSet.responses_upstream``); nothing probes for it."""

    @property
    def name(self) -> str: ...

    async def speaks_responses(self) -> bool:
        """Whether to relay this request natively (configured, or found out once)."""
        ...

    def responses_events(self, body: Mapping[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """The upstream's events for a streamed ``POST /responses`` with ``body``,
        each a JSON object with its ``type``, ending with the terminal one
        (``response.completed``, ``.incomplete`` or ``.failed``); an upstream
        fault raises ``EngineError``. Cancellable, like ``Engine.stream``."""
        ...

"""The client's data: requests, what a parser makes of one event, and the finished answer.

Dialect-neutral: the three parse modules (``chat``, ``responses``,
``messages``) turn their wire events into ``Parsed`` values made of
``Piece``s; ``ui.client.builder`` accumulates them into an ``Answer``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DIALECT_NAMES",
    "Answer",
    "AnswerMetrics",
    "ChatRequest",
    "Delta",
    "DeltaKind",
    "DialectName",
    "EventError",
    "Parsed",
    "Piece",
    "RawEvent",
    "ToolCall",
    "Usage",
]

DialectName = Literal["chat", "responses", "messages"]
DIALECT_NAMES: tuple[DialectName, ...] = ("chat", "responses", "messages")
# What a piece of streamed text is: the answer, the model's reasoning, a fragment of a
# tool call's arguments, or a refusal.
DeltaKind = Literal["content", "reasoning", "tool_call", "refusal"]


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """One chat request in Chat Completions terms; ``None`` fields are left to the server.

    ``dialect`` picks the wire (Chat Completions, Responses, Anthropic Messages);
    each parse module translates these fields into its own request body.
    """

    messages: Sequence[Mapping[str, str]]
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None
    dialect: DialectName = "chat"

    def body(self, *, stream: bool) -> dict[str, Any]:
        """The Chat Completions body (``ui.client.chat`` sends exactly this)."""
        body: dict[str, Any] = {
            "messages": [dict(m) for m in self.messages],
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        body.update(self.sampling())
        for name, value in (("max_tokens", self.max_tokens), ("seed", self.seed)):
            if value is not None:
                body[name] = value
        return body

    def sampling(self) -> dict[str, Any]:
        """``model``, ``temperature`` and ``top_p`` where set: every dialect names them so."""
        fields = (("model", self.model), ("temperature", self.temperature), ("top_p", self.top_p))
        return {name: value for name, value in fields if value is not None}

    def split_system(self) -> tuple[list[str], list[dict[str, str]]]:
        """For the dialects that take the system prompt apart: the system messages'
        contents, and the other messages (role and content)."""
        system = [m["content"] for m in self.messages if m.get("role") == "system"]
        others = [
            {"role": m["role"], "content": m["content"]}
            for m in self.messages
            if m.get("role") != "system"
        ]
        return system, others


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One dispatched SSE event as it arrived (for the Inspector).

    ``kind`` is what the parser found in it: ``content``, ``reasoning``,
    ``tool_call``, ``refusal``, ``usage``, ``finish``, ``error``, ``done``,
    ``ping`` or ``meta`` (bookkeeping such as ``response.created``).
    """

    id: str
    event: str
    data: str
    t_s: float  # arrival, seconds since the request was sent
    connection: int  # 0 = the original response, n = the n-th resume
    kind: str = ""
    text: str = ""  # the delta text it carried, if any


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class AnswerMetrics:
    """Per-answer timings, all measured on the client.

    ``tokens`` counts the streamed deltas that carried text of any kind
    (answer, reasoning, tool-call arguments): one per token as engines
    stream them, and exactly what the timeline plots, so the two never
    disagree. The server's own count is ``Answer.usage``. A non-streamed
    answer has no deltas: its ``tokens`` is the usage's completion tokens.
    ``tokens_per_s`` is the arrival rate once text flows, ``(n - 1) / (t_last
    - t_first)``, so it does not mix in the time to first token.
    """

    ttft_s: float | None
    tokens: int
    tokens_per_s: float | None
    duration_s: float
    reconnects: int
    finish_reason: str | None
    token_times_s: tuple[float, ...]
    streamed: bool
    reasoning_s: float | None = None  # first to last reasoning delta


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of streamed text, as soon as it arrived.

    ``kind`` says what it is (``content`` unless the model reasons, calls a
    tool or refuses). For ``tool_call`` pieces ``text`` is a fragment of the
    arguments; ``index`` names the call and ``tool_id`` / ``name`` come on its
    first fragment.
    """

    text: str
    t_s: float
    kind: DeltaKind = "content"
    index: int | None = None
    tool_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCall:
    index: int
    id: str | None
    name: str | None
    arguments: str
    type: str = "function"


@dataclass(frozen=True, slots=True)
class Answer:
    """The whole answer: ``ChatStream``'s last item, or ``ChatClient.complete``'s result."""

    text: str
    stream_id: str | None
    model: str | None
    metrics: AnswerMetrics
    events: tuple[RawEvent, ...]
    usage: Usage | None = None
    cancelled: bool = False
    reasoning: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    refusal: str = ""
    dialect: DialectName = "chat"


@dataclass(frozen=True, slots=True)
class Piece:
    """Streamed text found in one event, before it is timestamped into a ``Delta``."""

    kind: DeltaKind
    text: str
    index: int | None = None
    tool_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class EventError:
    message: str
    type: str | None = None
    code: str | None = None


@dataclass(slots=True)
class Parsed:
    """What one event (or one non-streamed body) says; ``done`` = the dialect's last event."""

    kind: str = "meta"
    pieces: list[Piece] = field(default_factory=list)
    stream_id: str | None = None
    model: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    done: bool = False
    error: EventError | None = None

    def settle_kind(self) -> Parsed:
        """Name the event after the most telling thing in it (the Inspector's filter)."""
        if self.error is not None:
            self.kind = "error"
        elif self.pieces:
            self.kind = self.pieces[0].kind
        elif self.usage is not None:
            self.kind = "usage"
        elif self.finish_reason is not None:
            self.kind = "finish"
        return self

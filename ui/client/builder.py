"""Accumulates parsed events into an ``Answer``: one place for text, tool calls and metrics."""

from __future__ import annotations

from dataclasses import replace

from ui.client.models import (
    Answer,
    AnswerMetrics,
    Delta,
    DialectName,
    Parsed,
    RawEvent,
    ToolCall,
    Usage,
)

__all__ = ["AnswerBuilder"]


class AnswerBuilder:
    """Everything that arrived for one answer so far; ``answer()`` is a snapshot."""

    def __init__(self, dialect: DialectName, *, streamed: bool = True) -> None:
        self.dialect: DialectName = dialect
        self.streamed = streamed
        self.stream_id: str | None = None
        self.model: str | None = None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.cancelled = False
        self.connection = 0
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._refusal: list[str] = []
        self._tools: dict[int, ToolCall] = {}
        self._events: list[RawEvent] = []
        self._token_times: list[float] = []
        self._reasoning_times: list[float] = []

    @property
    def has_events(self) -> bool:
        return bool(self._events)

    def add(self, parsed: Parsed, now: float) -> list[Delta]:
        """Take in one parsed event that arrived at ``now``; return its deltas."""
        if parsed.stream_id and self.stream_id is None:
            self.stream_id = parsed.stream_id
        if parsed.model:
            self.model = parsed.model
        if parsed.usage is not None:
            self.usage = _merge_usage(self.usage, parsed.usage)
        if parsed.finish_reason:
            self.finish_reason = parsed.finish_reason
        if parsed.error is not None:
            self.finish_reason = "error"
        deltas: list[Delta] = []
        for piece in parsed.pieces:
            if piece.kind == "tool_call":
                self._add_tool_fragment(piece.index or 0, piece.tool_id, piece.name, piece.text)
            elif not piece.text:
                continue
            elif piece.kind == "reasoning":
                self._reasoning.append(piece.text)
                self._reasoning_times.append(now)
            elif piece.kind == "refusal":
                self._refusal.append(piece.text)
            else:
                self._content.append(piece.text)
            if piece.text:
                self._token_times.append(now)
            if piece.text or piece.kind == "tool_call":
                deltas.append(
                    Delta(piece.text, now, piece.kind, piece.index, piece.tool_id, piece.name)
                )
        return deltas

    def record(self, event: RawEvent) -> None:
        self._events.append(event)

    def _add_tool_fragment(
        self, index: int, tool_id: str | None, name: str | None, arguments: str
    ) -> None:
        call = self._tools.get(index)
        if call is None:
            self._tools[index] = ToolCall(index, tool_id, name, arguments)
            return
        self._tools[index] = replace(
            call,
            id=call.id or tool_id,
            name=call.name or name,
            arguments=call.arguments + arguments,
        )

    def answer(self, duration_s: float) -> Answer:
        times = self._token_times
        rate = None
        if len(times) >= 2 and times[-1] > times[0]:
            rate = (len(times) - 1) / (times[-1] - times[0])
        reasoning = self._reasoning_times
        finish = self.finish_reason
        if self.cancelled and finish is None:
            finish = "cancelled"
        tokens = len(times)
        if not self.streamed:
            tokens = self.usage.completion_tokens if self.usage else 0
            if tokens and duration_s > 0:
                rate = tokens / duration_s
        return Answer(
            text="".join(self._content),
            stream_id=self.stream_id,
            model=self.model,
            metrics=AnswerMetrics(
                ttft_s=times[0] if times else (duration_s if not self.streamed else None),
                tokens=tokens,
                tokens_per_s=rate,
                duration_s=duration_s,
                reconnects=self.connection,
                finish_reason=finish,
                token_times_s=tuple(times),
                streamed=self.streamed,
                reasoning_s=(reasoning[-1] - reasoning[0]) if reasoning else None,
            ),
            events=tuple(self._events),
            usage=self.usage,
            cancelled=self.cancelled or finish == "cancelled",
            reasoning="".join(self._reasoning),
            tool_calls=tuple(self._tools[i] for i in sorted(self._tools)),
            refusal="".join(self._refusal),
            dialect=self.dialect,
        )


def _merge_usage(old: Usage | None, new: Usage) -> Usage:
    """Anthropic reports input tokens at the start and output tokens at the end."""
    if old is None:
        return new
    prompt = new.prompt_tokens or old.prompt_tokens
    completion = new.completion_tokens or old.completion_tokens
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=new.total_tokens if new.total_tokens else prompt + completion,
        reasoning_tokens=new.reasoning_tokens
        if new.reasoning_tokens is not None
        else old.reasoning_tokens,
    )

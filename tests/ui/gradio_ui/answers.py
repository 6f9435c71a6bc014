"""Answers and live answers built the way the client builds them, for the pure-function tests."""

from __future__ import annotations

from ui.client import Answer, Delta
from ui.client.builder import AnswerBuilder
from ui.client.models import Parsed, Piece, RawEvent, Usage
from ui.gradio_ui.live import LiveAnswer

__all__ = ["REASONING_THEN_TOOL_THEN_TEXT", "built_answer", "live_of"]

# (kind, text, tool index, tool id, tool name) per delta: a reasoning model calling a tool.
REASONING_THEN_TOOL_THEN_TEXT: list[tuple[str, str, int | None, str | None, str | None]] = [
    ("reasoning", "Let me ", None, None, None),
    ("reasoning", "see.", None, None, None),
    ("tool_call", "", 0, "call_a", "weather"),
    ("tool_call", '{"city"', 0, None, None),
    ("tool_call", ': "Oslo"}', 0, None, None),
    ("content", "It is ", None, None, None),
    ("content", "sunny.", None, None, None),
]


def built_answer(
    script: list[tuple[str, str, int | None, str | None, str | None]],
    *,
    finish: str | None = "stop",
    cancelled: bool = False,
    streamed: bool = True,
    usage: Usage | None = None,
) -> Answer:
    """The ``Answer`` the client builds from these deltas, one event each, 0.1 s apart."""
    builder = AnswerBuilder("chat", streamed=streamed)
    builder.stream_id = "chatcmpl-x"
    builder.model = "m"
    for i, (kind, text, index, tool_id, name) in enumerate(script, start=1):
        parsed = Parsed(pieces=[Piece(kind, text, index, tool_id, name)])  # type: ignore[arg-type]
        parsed.settle_kind()
        builder.add(parsed, i / 10)
        builder.record(RawEvent(str(i), "", f'{{"n": {i}}}', i / 10, 0, parsed.kind, text))
    end = Parsed(finish_reason=finish, usage=usage).settle_kind()
    builder.add(end, (len(script) + 1) / 10)
    builder.record(RawEvent(str(len(script) + 1), "", "[DONE]", (len(script) + 1) / 10, 0, "done"))
    builder.cancelled = cancelled
    return builder.answer((len(script) + 2) / 10)


def live_of(
    script: list[tuple[str, str, int | None, str | None, str | None]], answer: Answer | None = None
) -> LiveAnswer:
    """A ``LiveAnswer`` fed these deltas (and finished with ``answer`` if given)."""
    live = LiveAnswer()
    for i, (kind, text, index, tool_id, name) in enumerate(script, start=1):
        live.add(Delta(text, i / 10, kind, index, tool_id, name))  # type: ignore[arg-type]
    if answer is not None:
        live.finish(answer)
    return live

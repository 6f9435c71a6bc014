"""The prompt format for a base model, which continues text rather than chats.

A plain transcript: a one-paragraph description (or the system message),
then ``User:`` / ``Assistant:`` turns, ending with ``Assistant:`` for the
model to continue; it answers, then starts the next ``User:`` line, which is
where we stop (``TURN_STOPS``).

No example exchanges: the model copied them. With two examples ("Water boils
at 100 °C…", a haiku about autumn) answers carried their lines verbatim and
their haiku line breaks. The format's measure is ``bench/prompt_leak.py``
(figures in docs/BENCHMARKS.md). What the examples taught (answer rather than
echo) is weaker without them; what an earlier answer in the same chat would
teach by being copied is prevented by the engine's no-copy rule
(``backend.engines.llama.logits``).

Tool calls and results have their own lines, so a forced call is the
continuation ``Assistant calls NAME with arguments: {…}`` under a grammar
(``backend.engines.llama.grammar``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Final

from backend.engines.base import ChatMessage, ToolSpec

DEFAULT_SYSTEM: Final = (
    "The following is a conversation between a curious user and a helpful, "
    "knowledgeable assistant. The assistant answers clearly and concisely."
)
# Where the model starts the next turn of the transcript (it sometimes writes
# the label in lower case).
TURN_STOPS: Final = ("\nUser:", "\nuser:", "\nAssistant:", "\nAssistant calls ", "\nTool result")
ANSWER_CUE: Final = "\nAssistant:"
CALL_CUE: Final = "\nAssistant calls"


def build_prompt(messages: Sequence[ChatMessage], tools: Sequence[ToolSpec] = ()) -> str:
    """The transcript up to the cue; the caller appends ``ANSWER_CUE`` or a call cue.

    System and developer messages replace the opening description. ``tools``
    are described after it (only when a call is forced: the model is told
    what it may call and with which arguments).
    """
    system = "\n\n".join(
        m.content.strip() for m in messages if m.role in ("system", "developer") and m.content
    )
    parts = [system or DEFAULT_SYSTEM]
    if tools:
        parts.append("\n\nThe assistant can call these tools:")
        for tool in tools:
            line = f"\n- {tool.name}"
            if tool.description:
                line += f": {tool.description.strip()}"
            if tool.parameters:
                line += f" Arguments (JSON Schema): {json.dumps(tool.parameters)}"
            parts.append(line)
    calls: dict[str, str] = {}  # tool call id → function name, for the results
    for message in messages:
        if message.role == "user":
            # A blank line before each user turn.
            parts.append(f"\n\nUser: {message.content.strip()}")
        elif message.role == "assistant":
            if message.content.strip() or not message.tool_calls:
                parts.append(f"{ANSWER_CUE} {message.content.strip()}")
            for call in message.tool_calls:
                calls[call.id] = call.name
                parts.append(call_line(call.name, call.arguments))
        elif message.role == "tool":
            name = message.name or calls.get(message.tool_call_id or "")
            label = f"Tool result ({name})" if name else "Tool result"
            parts.append(f"\n{label}: {message.content.strip()}")
    return "".join(parts)


def answer_prompt(messages: Sequence[ChatMessage]) -> str:
    """The transcript, cued for the assistant to answer in text."""
    return build_prompt(messages) + ANSWER_CUE


def call_line(name: str, arguments: str) -> str:
    """An earlier call in the transcript."""
    return f"{call_cue(name)}{arguments.strip()}"


def call_cue(name: str) -> str:
    """The cue for a forced call of ``name``: the model writes the arguments."""
    return f"{CALL_CUE} {name} with arguments: "


class AnswerTrimmer:
    """Drops the whitespace around an answer without delaying any visible text.

    The transcript puts a space after "Assistant:" and a newline before the
    next turn; neither belongs to the answer. Leading whitespace is dropped;
    trailing whitespace is held until something visible follows it, and
    dropped if nothing does.
    """

    def __init__(self) -> None:
        self._started = False
        self._pending = ""

    def feed(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        buffer = self._pending + text
        body = buffer.rstrip()
        self._pending = buffer[len(body) :]
        return body

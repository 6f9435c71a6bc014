"""Chat messages both ways: Gradio history to OpenAI messages, and an answer to Chatbot messages.

Pure functions (no Gradio import, no I/O). An answer becomes up to three
kinds of Chatbot messages in one bubble: a collapsible "Thinking" block for
reasoning, one collapsible block per tool call (name, id, arguments), then the
text, ending with a note when it was stopped or failed. Gradio's message
``metadata`` draws the blocks: ``status`` "pending" shows a spinner and keeps
the block open while it streams, "done" closes it, ``duration`` is shown in
seconds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ui.client import BackendHTTPError, ChatClientError
from ui.gradio_ui.live import LiveAnswer
from ui.present import stopped_note

__all__ = [
    "ERROR_MARK",
    "STOP_MARK",
    "WAITING",
    "WAITING_WHOLE",
    "answer_messages",
    "answer_text",
    "error_markdown",
    "history_to_messages",
    "user_message",
]

# Notes the UI appends to an answer start with one of these; they are cut off again
# when the history is sent back to the model (the model never wrote them).
ERROR_MARK = "\n\n> ⚠️ "
STOP_MARK = "\n\n> ⏹ "
_MARKS = (ERROR_MARK, STOP_MARK)
WAITING = "_…waiting for the first token…_"
WAITING_WHOLE = "_…waiting for the whole answer (not streamed)…_"
THINKING = "Thinking"


def error_markdown(exc: BaseException) -> str:
    """A readable, one-paragraph Markdown note for an error (appended to the answer)."""
    if isinstance(exc, BackendHTTPError):
        text = f"**The backend refused the request** (HTTP {exc.status_code}): {exc.server_message}"
    elif isinstance(exc, ChatClientError):
        text = f"**{_error_title(exc)}**: {exc.message}"
    else:
        text = f"**Unexpected error**: {type(exc).__name__}: {exc}"
    return ERROR_MARK + text.replace("\n", " ")


def _error_title(exc: ChatClientError) -> str:
    return {
        "BackendUnreachableError": "Backend unreachable",
        "StreamEventError": "The backend reported an error mid-answer",
        "ConnectionLostError": "Connection lost",
    }.get(type(exc).__name__, "Error")


def _content_text(content: Any) -> str:
    """Text of a Gradio 6 message content (a string or a list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        return str(content.get("text", "")) if content.get("type", "text") == "text" else ""
    if isinstance(content, Sequence):
        return "".join(_content_text(part) for part in content)
    return ""


def _without_notes(text: str) -> str:
    for mark in _MARKS:
        if text.startswith(mark.lstrip("\n")):
            return ""  # an answer that is only a note
        text = text.split(mark, 1)[0]
    return text


def history_to_messages(
    history: Sequence[Mapping[str, Any]], message: str, system_prompt: str | None
) -> list[dict[str, str]]:
    """OpenAI messages from a Chatbot history plus the new user message.

    Thinking and tool-call blocks (messages with a metadata title) and the UI's
    own notes are left out: they are not what the model said.
    """
    messages: list[dict[str, str]] = []
    if system_prompt and system_prompt.strip():
        messages.append({"role": "system", "content": system_prompt.strip()})
    for item in history:
        role = item.get("role")
        metadata = item.get("metadata") or {}
        if role not in ("user", "assistant") or metadata.get("title"):
            continue
        text = _without_notes(_content_text(item.get("content")))
        if not text:
            continue
        if messages and messages[-1]["role"] == role == "assistant":
            messages[-1]["content"] += text  # one answer split over bubbles
        else:
            messages.append({"role": str(role), "content": text})
    messages.append({"role": "user", "content": message})
    return messages


def user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def answer_text(live: LiveAnswer, *, waiting: str = WAITING) -> str:
    """The answer's text with its note (stopped, error), or the waiting line."""
    text = live.content
    if live.refusal:
        text += f"\n\n**Refused:** {live.refusal}"
    if live.error is not None:
        text = (text + error_markdown(live.error)).lstrip("\n")
    elif live.stopped and live.answer is not None:
        text = (text + STOP_MARK + stopped_note(live.answer)).lstrip("\n")
    if text:
        return text
    if not live.done:
        return waiting
    return "" if live.tools else "_(empty answer)_"


def answer_messages(live: LiveAnswer, *, waiting: str = WAITING) -> list[dict[str, Any]]:
    """Chatbot messages for one answer (one bubble): thinking, tool calls, text."""
    messages: list[dict[str, Any]] = []
    if live.reasoning:
        duration = live.reasoning_s()
        metadata: dict[str, Any] = {
            "title": THINKING,
            "status": "pending" if live.reasoning_open and not live.done else "done",
        }
        if duration is not None:
            metadata["duration"] = round(duration, 1)
        messages.append({"role": "assistant", "content": live.reasoning, "metadata": metadata})
    for index in sorted(live.tools):
        block = live.tools[index]
        tool_metadata: dict[str, Any] = {
            "title": f"🛠️ Tool call: {block.name or '?'}",
            "status": "done" if block.done or live.done else "pending",
        }
        if block.id:
            tool_metadata["log"] = block.id
        messages.append(
            {
                "role": "assistant",
                "content": f"```json\n{_pretty_json(block.arguments)}\n```",
                "metadata": tool_metadata,
            }
        )
    text = answer_text(live, waiting=waiting)
    if text or not messages:
        messages.append({"role": "assistant", "content": text})
    return messages


def _pretty_json(arguments: str) -> str:
    """Indented when the arguments are complete JSON; as they came while still streaming."""
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        return arguments

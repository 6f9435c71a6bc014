"""ui/gradio_ui/messages.py: history to OpenAI messages, and an answer to Chatbot messages."""

from __future__ import annotations

from typing import Any

from tests.ui.gradio_ui.answers import REASONING_THEN_TOOL_THEN_TEXT, built_answer, live_of
from ui.client import BackendHTTPError, BackendUnreachableError, StreamEventError
from ui.gradio_ui.live import LiveAnswer
from ui.gradio_ui.messages import (
    ERROR_MARK,
    STOP_MARK,
    WAITING,
    answer_messages,
    answer_text,
    error_markdown,
    history_to_messages,
)


def test_history_in_gradio_6_format_becomes_openai_messages() -> None:
    history: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "hello" + ERROR_MARK + "oops"}]},
        {"role": "user", "content": "plain string"},
        {"role": "assistant", "content": ERROR_MARK.lstrip("\n") + "**Backend unreachable**"},
        {"role": "user", "content": [{"type": "file", "file": {"path": "/x.png"}}]},
        {"role": "user", "content": "tell me"},
        {"role": "assistant", "content": "I think…", "metadata": {"title": "Thinking"}},
        {"role": "assistant", "content": "{}", "metadata": {"title": "🛠️ Tool call: x"}},
        {"role": "assistant", "content": "Once upon" + STOP_MARK + "stopped · 1.0 s · 3 tokens"},
    ]
    messages = history_to_messages(history, "next", "  be brief ")
    assert messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},  # our notes are not sent to the model
        {"role": "user", "content": "plain string"},
        {"role": "user", "content": "tell me"},
        {"role": "assistant", "content": "Once upon"},  # nor thinking or tool blocks
        {"role": "user", "content": "next"},
    ]


def test_no_system_message_when_the_prompt_is_blank() -> None:
    assert history_to_messages([], "q", "  ") == [{"role": "user", "content": "q"}]


def test_error_markdown_is_one_readable_block() -> None:
    http = error_markdown(BackendHTTPError(404, "The model 'x'\ndoes not exist.", "invalid", "nf"))
    assert http.startswith(ERROR_MARK)
    assert "HTTP 404" in http
    assert "The model 'x' does not exist." in http
    down = error_markdown(BackendUnreachableError("cannot reach the backend at http://h"))
    assert "Backend unreachable" in down


def test_a_streaming_answer_shows_thinking_then_tool_then_text_in_one_bubble() -> None:
    live = live_of(REASONING_THEN_TOOL_THEN_TEXT[:2])
    (thinking,) = answer_messages(live)[:1]
    assert thinking["metadata"]["title"] == "Thinking"
    assert thinking["metadata"]["status"] == "pending"  # open, with a spinner, while it grows
    assert thinking["content"] == "Let me see."
    assert answer_messages(live)[-1]["content"] == WAITING  # no answer text yet

    live = live_of(REASONING_THEN_TOOL_THEN_TEXT[:4])
    thinking, tool, waiting = answer_messages(live)
    assert waiting["content"] == WAITING
    assert thinking["metadata"]["status"] == "done"
    assert tool["metadata"]["title"] == "🛠️ Tool call: weather"
    assert tool["metadata"]["status"] == "pending"
    assert tool["metadata"]["log"] == "call_a"
    assert tool["content"] == '```json\n{"city"\n```'  # incomplete JSON: as it came

    answer = built_answer(REASONING_THEN_TOOL_THEN_TEXT, finish="tool_calls")
    thinking, tool, text = answer_messages(live_of(REASONING_THEN_TOOL_THEN_TEXT, answer))
    # Thought from the request until its first other output, the tool call at 0.3 s.
    assert thinking["metadata"] == {"title": "Thinking", "status": "done", "duration": 0.3}
    assert tool["metadata"]["status"] == "done"
    assert tool["content"] == '```json\n{\n  "city": "Oslo"\n}\n```'
    assert text == {"role": "assistant", "content": "It is sunny."}


def test_a_stopped_answer_is_marked_with_what_it_got() -> None:
    script = REASONING_THEN_TOOL_THEN_TEXT[5:]
    answer = built_answer(script, finish="cancelled", cancelled=True)
    live = live_of(script, answer)
    assert live.stopped
    text = answer_text(live)
    assert text.startswith("It is sunny.")
    assert text.endswith(STOP_MARK + "stopped · 0.4 s · 2 tokens")
    assert answer_messages(live)[-1]["content"] == text


def test_an_error_keeps_the_partial_answer_and_says_what_happened() -> None:
    partial = built_answer([("content", "Half", None, None, None)], finish=None)
    live = live_of([("content", "Half", None, None, None)])
    live.fail(StreamEventError("the engine failed", "engine_error", None, partial))
    text = answer_text(live)
    assert text.startswith("Half" + ERROR_MARK)
    assert "mid-answer" in text
    assert "the engine failed" in text
    nothing = LiveAnswer()
    nothing.fail(BackendUnreachableError("cannot reach the backend at http://h"))
    assert answer_text(nothing).startswith(ERROR_MARK.lstrip("\n"))


def test_an_empty_finished_answer_says_so_and_a_waiting_one_says_it_waits() -> None:
    assert answer_text(LiveAnswer()) == WAITING
    assert answer_text(LiveAnswer(), waiting="") == ""
    empty = LiveAnswer()
    empty.finish(built_answer([]))
    assert answer_text(empty) == "_(empty answer)_"

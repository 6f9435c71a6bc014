"""ui/render.py: history to OpenAI messages, metrics, timeline and Inspector data."""

from __future__ import annotations

from typing import Any

from ui.client import (
    Answer,
    AnswerMetrics,
    BackendHTTPError,
    BackendUnreachableError,
    RawEvent,
)
from ui.render import (
    ERROR_MARK,
    error_markdown,
    event_rows,
    header_html,
    history_to_messages,
    metrics_html,
    timeline_plot,
)


def answer(*, streamed: bool = True, times: tuple[float, ...] = (0.1, 0.2, 0.3)) -> Answer:
    return Answer(
        text="abc",
        stream_id="chatcmpl-x",
        model="m<1>",
        metrics=AnswerMetrics(
            ttft_s=times[0] if times else 0.5,
            tokens=len(times) if streamed else 7,
            tokens_per_s=20.0,
            duration_s=0.5,
            reconnects=2,
            finish_reason="stop",
            token_times_s=times if streamed else (),
            streamed=streamed,
        ),
        events=(
            RawEvent("1", "message", '{"x":1}', 0.1, 0),
            RawEvent("2", "message", "[DONE]", 0.5, 1),
        ),
    )


def test_history_in_gradio_6_format_becomes_openai_messages() -> None:
    history: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "hello" + ERROR_MARK + "oops"}]},
        {"role": "user", "content": "plain string"},
        {"role": "assistant", "content": ERROR_MARK.lstrip("\n") + "**Backend unreachable**"},
        {"role": "user", "content": [{"type": "file", "file": {"path": "/x.png"}}]},
    ]
    messages = history_to_messages(history, "next", "  be brief ")
    assert messages == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},  # our error note is not sent to the model
        {"role": "user", "content": "plain string"},
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


def test_metrics_html_shows_the_four_numbers_and_escapes() -> None:
    text = metrics_html(answer(), "A <b>")
    for expected in ("100 ms", "20.0", ">3<", "0.50 s", "resumed 2×", "m&lt;1&gt;", "A &lt;b&gt;"):
        assert expected in text
    assert "no answer yet" in metrics_html(None)


def test_timeline_of_a_streamed_answer_rises_token_by_token() -> None:
    plot = timeline_plot([("chat", answer())])
    assert plot["columns"] == ["t_ms", "tokens", "answer"]
    rows = plot["data"]
    assert [r[1] for r in rows] == [0, 0, 1, 2, 3, 3]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_timeline_of_a_non_streamed_answer_jumps_at_the_end() -> None:
    rows = timeline_plot([("B", answer(streamed=False))])["data"]
    assert rows == [[0.0, 0, "B"], [500.0, 0, "B"], [500.0, 7, "B"]]


def test_event_rows_label_each_event() -> None:
    rows = event_rows([("chat", answer())])
    assert rows == [
        ["chat", 0, "1", "message", '{"x":1}', 100.0],
        ["chat", 1, "2", "message", "[DONE]", 500.0],
    ]


def test_header_shows_engine_model_and_health() -> None:
    up = header_html(
        "http://b", {"status": "ok", "engine": "simulated", "model": "m", "hub": "memory"}, None
    )
    for expected in ("http://b", "simulated", "memory", "ssechat-ok"):
        assert expected in up
    down = header_html("http://b", None, "connection refused")
    assert "unreachable" in down
    assert "connection refused" in down

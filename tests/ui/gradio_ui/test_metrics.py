"""ui/gradio_ui/metrics.py: one token count everywhere, cards for live/finished/stopped answers."""

from __future__ import annotations

import dataclasses
import re

from tests.ui.gradio_ui.answers import REASONING_THEN_TOOL_THEN_TEXT, built_answer, live_of
from ui.client import Usage
from ui.gradio_ui.live import LiveAnswer
from ui.gradio_ui.metrics import metrics_html, timeline_plot


def card(html: str, key: str) -> str:
    match = re.search(rf'data-metric="{key}"[^>]*><div class="ssechat-value">([^<]*)<', html)
    assert match, (key, html)
    return match.group(1)


def test_no_answer_yet() -> None:
    html = metrics_html(None, "A <b>")
    assert card(html, "tokens") == "–"
    assert "no answer yet" in html
    assert "A &lt;b&gt;" in html


def test_the_token_card_the_timeline_and_the_live_count_agree() -> None:
    # The server says 12 completion tokens (say, stop-sequence tokens it held back);
    # the UI counts what it received: 6 deltas with text. Cards and plot both say 6.
    answer = built_answer(REASONING_THEN_TOOL_THEN_TEXT, usage=Usage(3, 12, 15))
    live = live_of(REASONING_THEN_TOOL_THEN_TEXT)
    assert live.tokens == 6  # while streaming
    live.finish(answer)
    html = metrics_html(live)
    assert card(html, "tokens") == "6" == str(answer.metrics.tokens)
    assert "tokens streamed" in html
    rows = timeline_plot([("chat", answer)])["data"]
    assert max(row[1] for row in rows) == 6
    assert "12" not in re.sub(
        r'title="[^"]*"', "", html
    )  # the server's count is not a second number


def test_cards_while_streaming_then_finished() -> None:
    live = live_of(REASONING_THEN_TOOL_THEN_TEXT[:2])
    html = metrics_html(live)
    assert card(html, "finish") == "streaming…"
    assert card(html, "tokens") == "2"
    assert card(html, "ttft") == "100 ms"
    assert card(html, "rate") == "10.0"  # (2 - 1) tokens / 0.1 s
    live = live_of(REASONING_THEN_TOOL_THEN_TEXT, built_answer(REASONING_THEN_TOOL_THEN_TEXT))
    html = metrics_html(live)
    assert card(html, "finish") == "stop"
    assert card(html, "duration") == "0.90 s"
    assert "streamed (SSE) · Chat Completions · m" in html


def test_a_stopped_answer_reads_cancelled_with_what_it_got() -> None:
    script = REASONING_THEN_TOOL_THEN_TEXT[:5]
    live = live_of(script, built_answer(script, finish="cancelled", cancelled=True))
    html = metrics_html(live)
    assert card(html, "finish") == "cancelled"
    assert card(html, "tokens") == "4"
    assert "stopped · 0.7 s · 4 tokens" in html


def test_a_non_streamed_answer_shows_the_servers_count_and_says_so() -> None:
    answer = built_answer([], streamed=False, usage=Usage(3, 7, 10))
    live = LiveAnswer(streamed=False)
    live.finish(answer)
    html = metrics_html(live)
    assert card(html, "tokens") == "7"
    assert "tokens (server)" in html
    assert "not streamed (one JSON)" in html


def test_timeline_of_a_streamed_answer_rises_token_by_token() -> None:
    plot = timeline_plot([("chat", built_answer(REASONING_THEN_TOOL_THEN_TEXT[5:]))])
    assert plot["columns"] == ["t_ms", "tokens", "answer"]
    rows = plot["data"]
    assert [r[1] for r in rows] == [0, 0, 1, 2, 2]
    assert [r[0] for r in rows] == sorted(r[0] for r in rows)


def test_timeline_of_a_non_streamed_answer_jumps_at_the_end() -> None:
    rows = timeline_plot([("B", built_answer([], streamed=False, usage=Usage(1, 7, 8)))])["data"]
    assert rows == [[0.0, 0, "B"], [200.0, 0, "B"], [200.0, 7, "B"]]


def test_a_slow_first_token_reads_in_seconds() -> None:
    live = LiveAnswer()
    live.finish(built_answer([("content", "x", None, None, None)] * 12))
    assert card(metrics_html(live), "ttft") == "100 ms"
    slow = built_answer([("content", "x", None, None, None)])
    slow = dataclasses.replace(slow, metrics=dataclasses.replace(slow.metrics, ttft_s=1.234))
    live.finish(slow)
    assert card(metrics_html(live), "ttft") == "1.23 s"

"""ui/gradio_ui/inspector.py: compact rows, JSON on demand, the kind filter."""

from __future__ import annotations

import dataclasses
import html
import re

from tests.ui.gradio_ui.answers import REASONING_THEN_TOOL_THEN_TEXT, built_answer
from ui.client import RawEvent
from ui.gradio_ui.inspector import KIND_GROUPS, MAX_ROWS, filtered_events, inspector_html


def rows(page: str) -> list[list[str]]:
    """The cells of each row's summary line."""
    return [
        [
            html.unescape(re.sub(r"<[^>]+>", "", cell))
            for cell in re.findall(r"<span[^>]*>.*?</span>", summary)
        ]
        for summary in re.findall(r"<summary>(.*?)</summary>", page)
    ]


def test_one_compact_row_per_event_with_its_data_on_demand() -> None:
    answers = [("A: stream · chat · m", built_answer(REASONING_THEN_TOOL_THEN_TEXT))]
    page = inspector_html(answers)
    listed = rows(page)
    assert len(listed) == 8  # 7 deltas and [DONE]
    assert listed[0] == ["A", "1", "message", "reasoning", "Let me ", "100.0", "0"]
    assert listed[3][3:5] == ["tool_call", '{"city"']
    assert listed[-1][3] == "done"
    assert 'title="A: stream · chat · m"' in page  # the full label on hover
    # Each row is a <details>: its whole data, indented, opens under it.
    assert page.count("<details") == 8
    assert "<pre>{\n  &quot;n&quot;: 1\n}</pre>" in page
    assert "<pre>[DONE]</pre>" in page
    assert "8 events, 8 shown" in page


def test_the_filter_keeps_only_the_chosen_kinds() -> None:
    answers = [("chat", built_answer(REASONING_THEN_TOOL_THEN_TEXT))]
    only_reasoning = rows(inspector_html(answers, ["reasoning"]))
    assert [row[3] for row in only_reasoning] == ["reasoning", "reasoning"]
    assert {row[3] for row in rows(inspector_html(answers, ["tool call", "other"]))} == {
        "tool_call",
        "done",
    }
    assert rows(inspector_html(answers, [])) == []
    assert "8 events, 0 shown" in inspector_html(answers, [])
    assert len(filtered_events(answers, list(KIND_GROUPS))) == 8


def test_text_is_escaped_and_newlines_are_visible() -> None:
    answer = built_answer([("content", "<b>x</b>\nnext", None, None, None)])
    page = inspector_html([("chat", answer)])
    assert "&lt;b&gt;x&lt;/b&gt;⏎next" in page
    assert "<b>x</b>" not in page


def test_nothing_yet_and_very_long_answers() -> None:
    assert "No answer yet" in inspector_html(None)
    answer = built_answer([("content", "t", None, None, None)] * (MAX_ROWS + 10))
    page = inspector_html([("chat", answer)])
    assert page.count("<details") == MAX_ROWS
    assert f"the first {MAX_ROWS} of {MAX_ROWS + 11} that match" in page


def test_an_unknown_kind_counts_as_other() -> None:
    odd = RawEvent("9", "surprise", "{}", 0.1, 0, "novel-kind", "")
    answer = dataclasses.replace(built_answer([]), events=(odd,))
    assert len(filtered_events([("chat", answer)], ["other"])) == 1

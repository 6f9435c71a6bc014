"""The Compare tab in a real browser: the default shows why streaming matters; presets; Stop."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.ui.helpers import last_text, metric, open_app, poll, reference_text, wait_compare, words

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

PANE_A, PANE_B = "#compare-pane-a", "#compare-pane-b"


def open_compare(page: Page, url: str) -> None:
    open_app(page, url)
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#compare-prompt textarea")).to_be_visible()


def pane_text(page: Page, pane: str) -> str:
    return last_text(page, f"{pane} [data-testid='bot']")


def test_the_default_streams_one_pane_while_the_other_waits_for_the_whole_answer(
    page: Page, ui_url: str
) -> None:
    open_compare(page, ui_url)
    prompt = page.locator("#compare-prompt textarea").input_value()
    page.get_by_role("button", name="Run both").click()
    # Same model both sides; A shows text while B is still waiting for its whole body.
    poll(
        lambda: (pane_text(page, PANE_A), pane_text(page, PANE_B)),
        until=lambda v: "waiting" not in v[0] and len(v[0].split()) >= 3 and "waiting" in v[1],
    )
    wait_compare(page)
    expected = words(
        reference_text(
            ui_url,
            [{"role": "user", "content": prompt}],
            temperature=0.7,
            top_p=1.0,
            max_tokens=128,
        )
    )
    assert words(pane_text(page, PANE_A)) == expected
    assert words(pane_text(page, PANE_B)) == expected
    notes = page.locator("#compare-metrics-a .ssechat-note, #compare-metrics-b .ssechat-note")
    assert "streamed (SSE)" in notes.nth(0).inner_text()
    assert "not streamed" in notes.nth(1).inner_text()
    # A's first text came long before B's whole answer, which came all at once.
    first_a = float(metric(page, "ttft", "#compare-metrics-a").split()[0])
    first_b = float(metric(page, "ttft", "#compare-metrics-b").split()[0])
    assert first_a < first_b / 2
    legend = page.locator("#compare-timeline svg").first
    expect(legend).to_contain_text("A: stream · chat · ssechat-si")
    expect(legend).to_contain_text("B: no stream · chat · ssechat-si")


def test_stop_marks_both_panes_and_their_metrics(page: Page, ui_url: str) -> None:
    open_compare(page, ui_url)
    page.locator("#compare-prompt textarea").fill("Tell me a long story about streaming.")
    page.get_by_role("button", name="Run both").click()
    poll(lambda: len(pane_text(page, PANE_A).split()), until=lambda n: n >= 3)
    page.locator("#compare-stop").click()
    wait_compare(page)
    for pane, metrics in ((PANE_A, "#compare-metrics-a"), (PANE_B, "#compare-metrics-b")):
        expect(page.locator(pane)).to_contain_text("stopped ·")
        assert metric(page, "finish", metrics) == "cancelled"
    assert metric(page, "tokens", "#compare-metrics-b") == "0"  # nothing arrives until the end


def test_presets_set_both_panes(page: Page, ui_url: str) -> None:
    open_compare(page, ui_url)
    for name in ("A: settings", "B: settings"):
        page.get_by_role("button", name=name).click()
    mode_b = page.get_by_label("B: mode", exact=True)
    expect(mode_b).to_have_value("non-streaming (JSON)")
    page.get_by_label("two dialects").check()
    expect(mode_b).to_have_value("streaming (SSE)")
    expect(page.get_by_label("B: dialect", exact=True)).to_have_value("Responses")
    expect(page.get_by_label("A: dialect", exact=True)).to_have_value("Chat Completions")
    page.get_by_label("two temperatures").check()
    expect(page.get_by_label("B: dialect", exact=True)).to_have_value("Chat Completions")
    expect(page.get_by_label("A: temperature", exact=True)).to_have_value("0.2")
    expect(page.get_by_label("B: temperature", exact=True)).to_have_value("1.3")

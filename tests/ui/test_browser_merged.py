"""End to end on the real backend: dialects, reasoning, ``/demo``'s typed events.

These need the backend work merged beside the UI (the ``/v1/responses`` and
``/v1/messages`` routes, the ``ssechat-simulated-reasoning`` model); the same UI
paths are covered before that on a scripted backend (test_browser_fidelity.py).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.ui.helpers import (
    ANSWER,
    metric,
    open_app,
    reference_text,
    send,
    wait_compare,
    wait_idle,
    words,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

PROMPT = "Explain Server-Sent Events in a few sentences."
SIDEBAR = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256}


def choose(page: Page, label: str, option: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.click()
    page.get_by_role("option", name=option).click()
    expect(box).to_have_value(option)


@pytest.mark.parametrize("dialect", ["Responses", "Messages (Anthropic)"])
def test_the_chat_speaks_each_dialect(page: Page, ui_url: str, dialect: str) -> None:
    open_app(page, ui_url)
    choose(page, "Dialect (wire format)", dialect)
    send(page, PROMPT)
    wait_idle(page, 1)
    expected = reference_text(ui_url, [{"role": "user", "content": PROMPT}], **SIDEBAR)
    assert words(page.locator(ANSWER).last.inner_text()) == words(expected)
    assert metric(page, "finish") in ("stop", "length")
    expect(page.locator("#chat-metrics")).to_contain_text(dialect)
    page.get_by_role("tab", name="Inspector").click()
    name = "response.output_text.delta" if dialect == "Responses" else "content_block_delta"
    expect(page.locator("#inspector")).to_contain_text(name)


def test_a_reasoning_model_thinks_in_a_collapsible_block(page: Page, ui_url: str) -> None:
    open_app(page, ui_url)
    choose(page, "Model", "ssechat-simulated-reasoning")
    send(page, PROMPT)
    thinking = page.locator("#chat-live .thought-group").filter(has_text="Thinking")
    expect(thinking).to_be_visible(timeout=30_000)
    wait_idle(page, 1)
    done = page.locator(ANSWER).last.locator(".thought-group").filter(has_text="Thinking")
    expect(done.locator(".loading-spinner")).to_have_count(0)
    page.get_by_role("tab", name="Inspector").click()
    expect(page.locator("#inspector .ssechat-ev[data-kind='reasoning']")).not_to_have_count(0)


def test_compare_two_dialects(page: Page, ui_url: str) -> None:
    open_app(page, ui_url)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_label("two dialects").check()
    page.get_by_role("button", name="Run both").click()
    wait_compare(page)
    for pane in ("a", "b"):
        assert metric(page, "finish", f"#compare-metrics-{pane}") in ("stop", "length")
    expect(page.locator("#compare-metrics-b")).to_contain_text("Responses")
    a = page.locator("#compare-pane-a [data-testid='bot']").last.inner_text()
    b = page.locator("#compare-pane-b [data-testid='bot']").last.inner_text()
    assert words(a) == words(b)  # same model, same request, two wires


@pytest.mark.parametrize("dialect", ["responses", "messages"])
def test_demo_reads_each_dialects_typed_events(page: Page, ui_url: str, dialect: str) -> None:
    page.goto(f"{ui_url}/demo")
    page.get_by_label("Max tokens").fill("64")
    page.get_by_label("Dialect").select_option(dialect)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#answer")).to_have_attribute("data-done", "true", timeout=30_000)
    prompt = page.get_by_label("Prompt").input_value()
    expected = reference_text(ui_url, [{"role": "user", "content": prompt}], max_tokens=64)
    assert page.locator("#answer").inner_text() == expected
    first = "response.created" if dialect == "responses" else "message_start"
    expect(page.locator("#events tr").first).to_contain_text(first)

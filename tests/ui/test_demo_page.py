"""``/demo``: the browser's own ``EventSource``, linked from the app, with Stop and labels."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.ui.helpers import cancelled_by_request, open_app, poll, reference_text

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

PROMPT = "Explain Server-Sent Events in a few sentences."


def run_demo(page: Page, url: str, *, max_tokens: int = 64, dialect: str = "chat") -> str:
    """Send from ``/demo`` (labelled inputs) and wait for the end; return the status line."""
    page.goto(f"{url}/demo")
    page.get_by_label("Prompt").fill(PROMPT)
    page.get_by_label("Max tokens").fill(str(max_tokens))
    page.get_by_label("Dialect").select_option(dialect)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#answer")).to_have_attribute("data-done", "true", timeout=30_000)
    return page.locator("#status").inner_text()


def test_the_app_links_to_the_demo(page: Page, ui_url: str) -> None:
    open_app(page, ui_url)
    link = page.get_by_role("link", name="EventSource demo")
    with page.context.expect_page() as opened:
        link.click()
    demo = opened.value
    demo.wait_for_load_state()
    assert demo.url == f"{ui_url}/demo"
    expect(demo.get_by_role("heading", level=1)).to_contain_text("EventSource")


def test_demo_page_renders_the_answer_and_lists_the_events(page: Page, ui_url: str) -> None:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(f"{request.method} {request.url}"))
    status = run_demo(page, ui_url)
    text = page.locator("#answer").inner_text()
    assert text == reference_text(ui_url, [{"role": "user", "content": PROMPT}], max_tokens=64)
    assert "0 reconnects" in status
    assert any(r.startswith("GET ") and "/events?last_event_id=0" in r for r in seen)
    rows = page.locator("#events tr")
    assert rows.first.inner_text().split("\t")[:3] == ["1", "message", "meta"]
    assert rows.last.inner_text().split("\t")[:3][1:] == ["message", "done"]
    tokens = int(status.split(" tokens")[0].rsplit(" ", 1)[1])
    assert 0 < tokens <= 64
    assert page.locator("#events tr[data-kind='content']").count() == tokens


def test_demo_stop_cancels_on_the_server(page: Page, ui_url: str) -> None:
    before = cancelled_by_request(httpx.get(f"{ui_url}/metrics", timeout=10).text)
    page.goto(f"{ui_url}/demo")
    page.get_by_label("Max tokens").fill("2000")
    page.get_by_role("button", name="Send").click()
    poll(lambda: page.locator("#events tr").count(), until=lambda n: n >= 5)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#status")).to_contain_text("the server cancelled", timeout=10_000)
    expect(page.locator("#answer")).to_contain_text("⏹ stopped")
    assert cancelled_by_request(httpx.get(f"{ui_url}/metrics", timeout=10).text) == before + 1
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()


def test_demo_page_survives_dropped_connections(page: Page, faulty_ui_url: str) -> None:
    """Every SSE response is cut after 5 events: the browser reconnects with
    Last-Event-ID by itself, and the answer is still complete and not doubled."""
    status = run_demo(page, faulty_ui_url)
    expected = reference_text(faulty_ui_url, [{"role": "user", "content": PROMPT}], max_tokens=64)
    assert page.locator("#answer").inner_text() == expected
    reconnects = int(status.split(" reconnects")[0].rsplit(" ", 1)[1])
    assert reconnects >= 5

"""A real browser (headless Chromium via Playwright) on ``python ui/app.py``."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.ui.helpers import cancelled_by_request, reference_text

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

PROMPT = "Explain Server-Sent Events in a few sentences."
BOT = "#chat-bot [data-testid='bot']"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


def words(text: str) -> str:
    """Rendered Markdown differs from the raw text only in whitespace for these answers."""
    return " ".join(text.split())


def poll(
    read: Callable[[], Any], until: Callable[[Any], bool], timeout_s: float = 30.0
) -> list[Any]:
    """Sample ``read()`` every ~20 ms until ``until(value)``; return every distinct sample."""
    samples: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while True:
        value = read()
        if not samples or samples[-1] != value:
            samples.append(value)
        if until(value):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout_s}s; last value {value!r}")
        time.sleep(0.02)


def open_chat(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#chat-input textarea")).to_be_visible(timeout=30_000)
    # The header is filled from /healthz once the page has loaded.
    expect(page.locator(".ssechat-header")).to_contain_text("engine", timeout=30_000)


def send(page: Page, text: str) -> None:
    box = page.locator("#chat-input textarea")
    box.fill(text)
    box.press("Enter")


def bot_text(page: Page) -> str:
    bots = page.locator(BOT)
    return bots.last.inner_text() if bots.count() else ""


def test_chat_answer_grows_in_the_browser(page: Page, ui_url: str) -> None:
    open_chat(page, ui_url)
    send(page, PROMPT)
    metrics = page.locator("#chat-metrics .ssechat-note")
    samples = poll(
        lambda: (bot_text(page), metrics.inner_text()),
        until=lambda value: "finish:" in value[1],
    )
    texts = [words(text) for text, _ in samples if text.strip()]
    growing = [t for i, t in enumerate(texts) if i == 0 or t != texts[i - 1]]
    assert len(growing) >= 3, growing  # seen partial, in several steps
    for shorter, longer in itertools.pairwise(growing):
        assert longer.startswith(shorter)
    expected = reference_text(
        ui_url, [{"role": "user", "content": PROMPT}], temperature=0.7, top_p=1.0, max_tokens=256
    )
    assert words(bot_text(page)) == words(expected)
    assert "streamed (SSE)" in metrics.inner_text()
    # The timeline is drawn, and the Inspector lists the raw events, ending with [DONE].
    expect(page.locator("#chat-timeline svg").first).to_contain_text("tokens received")
    page.get_by_role("tab", name="Inspector").click()
    inspector = page.locator("#inspector")
    expect(inspector).to_contain_text("chat.completion.chunk")
    inspector.get_by_placeholder("Search").fill("DONE")  # the table is virtualised
    expect(inspector).to_contain_text("[DONE]")


def test_stop_cancels_the_generation_on_the_server(page: Page, ui_url: str) -> None:
    before = cancelled_by_request(httpx.get(f"{ui_url}/metrics", timeout=10).text)
    open_chat(page, ui_url)
    send(page, "Tell me a long story about streaming.")  # 256 tokens: about 5 s at 50/s
    poll(lambda: len(bot_text(page).split()), until=lambda n: n >= 5)
    page.locator("#chat-input [data-testid='stop-button']").click()
    poll(
        lambda: cancelled_by_request(httpx.get(f"{ui_url}/metrics", timeout=10).text),
        until=lambda n: n == before + 1,
        timeout_s=10,
    )
    stopped = bot_text(page)
    time.sleep(1.0)  # at 50 tokens/s a running answer would grow by ~50 tokens meanwhile
    assert bot_text(page) == stopped
    full = reference_text(
        ui_url,
        [{"role": "user", "content": "Tell me a long story about streaming."}],
        temperature=0.7,
        top_p=1.0,
        max_tokens=256,
    )
    assert len(words(stopped)) < len(words(full))
    expect(page.locator("#chat-input textarea")).to_be_enabled()  # ready for the next one


def test_compare_fills_both_panes(page: Page, ui_url: str) -> None:
    page.goto(ui_url)
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#compare-prompt textarea")).to_be_visible(timeout=30_000)
    expect(page.locator(".ssechat-header")).to_contain_text("engine", timeout=30_000)
    prompt = page.locator("#compare-prompt textarea").input_value()
    page.get_by_role("button", name="Run both").click()
    pane_a, pane_b = page.locator("#compare-pane-a"), page.locator("#compare-pane-b")
    # The streaming pane shows text while the non-streaming one is still waiting.
    poll(
        lambda: (pane_a.inner_text(), pane_b.inner_text()),
        until=lambda v: "waiting" not in v[0] and "appears here" not in v[0] and "waiting" in v[1],
    )
    notes = page.locator("#compare-metrics-a .ssechat-note, #compare-metrics-b .ssechat-note")
    poll(
        lambda: [notes.nth(i).inner_text() for i in range(notes.count())],
        until=lambda v: len(v) == 2 and all("finish:" in note for note in v),
    )
    expected = words(
        reference_text(
            ui_url,
            [{"role": "user", "content": prompt}],
            temperature=0.7,
            top_p=1.0,
            max_tokens=128,
        )
    )
    assert words(pane_a.inner_text()) == expected
    assert words(pane_b.inner_text()) == expected
    assert "streamed (SSE)" in notes.nth(0).inner_text()
    assert "not streamed" in notes.nth(1).inner_text()
    # One plot, both timelines.
    legend = page.locator("#compare-timeline svg").first
    expect(legend).to_contain_text("A: ssechat-simulated (stream)")
    expect(legend).to_contain_text("B: ssechat-simulated (no strea")


def run_demo(page: Page, url: str) -> tuple[str, str]:
    page.goto(f"{url}/demo")
    page.locator("#prompt").fill(PROMPT)
    page.locator("#max_tokens").fill("64")
    page.locator("#send").click()
    expect(page.locator("#answer")).to_have_attribute("data-done", "true", timeout=30_000)
    return page.locator("#answer").inner_text(), page.locator("#status").inner_text()


def test_demo_page_renders_the_answer_with_eventsource(page: Page, ui_url: str) -> None:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(f"{request.method} {request.url}"))
    text, status = run_demo(page, ui_url)
    assert text == reference_text(ui_url, [{"role": "user", "content": PROMPT}], max_tokens=64)
    assert "0 reconnects" in status
    assert any(r.startswith("GET ") and "/events?last_event_id=0" in r for r in seen)


def test_demo_page_survives_dropped_connections(page: Page, faulty_ui_url: str) -> None:
    """Every SSE response is cut after 5 events: the browser reconnects with
    Last-Event-ID by itself, and the answer is still complete and not doubled."""
    text, status = run_demo(page, faulty_ui_url)
    expected = reference_text(faulty_ui_url, [{"role": "user", "content": PROMPT}], max_tokens=64)
    assert text == expected
    reconnects = int(status.split(" reconnects")[0].rsplit(" ", 1)[1])
    assert reconnects >= 5

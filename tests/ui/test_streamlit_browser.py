"""A real browser (headless Chromium via Playwright) on ``streamlit run ui/streamlit_app.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.servers import free_port
from tests.ui.helpers import TOKENS_PER_S, cancelled_by_request, last_text, reference_text, words
from tests.ui.streamlit_helpers import streamlit_process

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

PROMPT = "Explain Server-Sent Events in a few sentences."
INPUT = "[data-testid='stChatInputTextArea']"
MESSAGE = "[data-testid='stChatMessage']"
# The answer's Markdown element (the Stop button's label is Markdown too, but not this element).
TEXT = "[data-testid='stMarkdown'] [data-testid='stMarkdownContainer']"
MAX_TOKENS = 256  # the page's default; answers run to it (SSECHAT_SIM_FILL_MAX_TOKENS)


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[str, str]]:
    """The page's URL and its embedded backend's URL (one process, two ports)."""
    backend_port = free_port()
    env = {
        "SSECHAT_ENGINE": "simulated",
        "SSECHAT_SIM_TOKENS_PER_S": str(TOKENS_PER_S),
        "SSECHAT_SIM_FILL_MAX_TOKENS": "true",
        "SSECHAT_STREAMLIT_BACKEND_PORT": str(backend_port),
    }
    with streamlit_process(env=env) as server:
        yield server.url, f"http://127.0.0.1:{backend_port}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, app: tuple[str, str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = context.new_page()
    page.goto(app[0])
    expect(page.get_by_text("engine simulated")).to_be_visible(timeout=60_000)
    yield page
    context.close()


def answer_text(page: Page) -> str:
    return last_text(page, MESSAGE, TEXT)


def send(page: Page, text: str) -> None:
    box = page.locator(INPUT)
    box.fill(text)
    box.press("Enter")
    expect(page.locator(MESSAGE)).not_to_have_count(0)


def test_typed_prompt_streams_into_the_page(page: Page, app: tuple[str, str]) -> None:
    send(page, PROMPT)
    samples: list[str] = []
    stop = page.locator(".st-key-stop")
    deadline = time.monotonic() + 60
    # Sample the answer while it streams: the Stop button is shown until the stream ends.
    while time.monotonic() < deadline:
        text = answer_text(page)
        if text and (not samples or samples[-1] != text):
            samples.append(text)
        if samples and stop.count() == 0:
            break
        time.sleep(0.02)
    expected = words(
        reference_text(
            app[1],
            [{"role": "user", "content": PROMPT}],
            model="ssechat-simulated",
            temperature=0.7,
            max_tokens=MAX_TOKENS,
        )
    )
    expect(page.get_by_text("finish length")).to_be_visible(timeout=30_000)
    assert words(answer_text(page)) == expected
    partial = [s for s in samples if words(s) != expected]
    assert len(partial) >= 3, f"the answer did not grow in place: {samples[:3]}"
    assert all(expected.startswith(words(s)) for s in partial)


def test_stop_button_cancels_on_the_server(page: Page, app: tuple[str, str]) -> None:
    metrics = f"{app[1]}/metrics"
    before = cancelled_by_request(httpx.get(metrics, timeout=10).text)
    send(page, "Please stop me.")
    expect(page.locator(MESSAGE).last.locator(TEXT)).not_to_have_count(0, timeout=30_000)
    page.locator(".st-key-stop").get_by_role("button", name="Stop").click()
    expect(page.get_by_text("stopped · ")).to_be_visible(timeout=30_000)
    assert cancelled_by_request(httpx.get(metrics, timeout=10).text) == before + 1
    expect(page.get_by_text("finish cancelled")).to_be_visible()
    stopped = words(answer_text(page))
    assert stopped
    expect(page.locator(".st-key-stop")).to_have_count(0)

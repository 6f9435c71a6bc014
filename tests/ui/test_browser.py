"""The Chat tab and the Inspector in a real browser (headless Chromium) on ``python ui/app.py``."""

from __future__ import annotations

import itertools
import re
import time

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.ui.helpers import (
    BOT,
    LIVE,
    USER,
    cancelled_by_request,
    last_text,
    metric,
    open_app,
    poll,
    reference_text,
    send,
    wait_idle,
    words,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

PROMPT = "Explain Server-Sent Events in a few sentences."
LONG = "Tell me a long story about streaming."
# The sidebar's defaults: what the reference answer must be asked with.
SIDEBAR = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 256}
NAMED_ROLES = "button|textbox|combobox|checkbox|radio|slider|spinbutton|link|searchbox|switch"


def bot_text(page: Page, selector: str = BOT) -> str:
    return last_text(page, selector)


def stream_ids(page: Page) -> set[str]:
    """The chat-stream ids in the (shown) Inspector's event data: the streams it describes."""
    return set(re.findall(r"chatcmpl-[0-9a-f]{32}", page.locator("#inspector").inner_html()))


def inspector_rows(page: Page) -> list[list[str]]:
    """The cells of every Inspector row, read at once (the list is redrawn whole)."""
    rows: list[list[str]] = page.evaluate(
        """() => [...document.querySelectorAll('#inspector .ssechat-ev > summary')]
                 .map(s => [...s.children].map(c => c.textContent))"""
    )
    return rows


def test_chat_answer_streams_then_moves_into_the_conversation(page: Page, ui_url: str) -> None:
    open_app(page, ui_url)
    send(page, PROMPT)
    samples = poll(
        lambda: (bot_text(page, LIVE), page.locator(BOT).count()),
        until=lambda value: value[1] == 1,
    )
    texts = [words(text) for text, _ in samples if text.strip() and "waiting" not in text]
    growing = [t for i, t in enumerate(texts) if i == 0 or t != texts[i - 1]]
    assert len(growing) >= 3, growing  # seen partial, in several steps
    for shorter, longer in itertools.pairwise(growing):
        assert longer.startswith(shorter)
    wait_idle(page, 1)
    expected = reference_text(ui_url, [{"role": "user", "content": PROMPT}], **SIDEBAR)
    assert words(bot_text(page)) == words(expected)
    expect(page.locator(LIVE)).to_have_count(0)  # the live answer is gone, hidden
    assert metric(page, "finish") in ("stop", "length")
    tokens = int(metric(page, "tokens"))
    assert "streamed (SSE) · Chat Completions" in page.locator("#chat-metrics").inner_text()
    expect(page.locator("#chat-timeline svg").first).to_contain_text("tokens streamed")

    # The Inspector: one row per event, as many content rows as the token card says,
    # [DONE] last, each row's JSON on demand.
    page.get_by_role("tab", name="Inspector").click()
    expect(page.locator("#inspector .ssechat-ev").first).to_be_visible()
    rows = inspector_rows(page)
    assert rows[-1][2:4] == ["message", "done"]
    assert sum(1 for row in rows if row[3] == "content") == tokens
    assert [int(row[1]) for row in rows] == list(range(1, len(rows) + 1))
    page.locator("#inspector .ssechat-ev > summary").nth(1).click()
    data = page.locator("#inspector .ssechat-ev[open] pre")
    expect(data).to_contain_text('"object": "chat.completion.chunk"')
    # The filter: usage only.
    kinds = page.locator("#inspector-kinds")
    for kind in ("content", "reasoning", "tool call", "error", "other"):
        kinds.get_by_label(kind, exact=True).uncheck()
    poll(lambda: [row[3] for row in inspector_rows(page)], until=lambda k: k == ["usage"])


def test_stop_marks_the_answer_and_every_number_describes_it(page: Page, ui_url: str) -> None:
    before = cancelled_by_request(httpx.get(f"{ui_url}/metrics", timeout=10).text)
    open_app(page, ui_url)
    send(page, LONG)  # 256 tokens: about 5 s at 50/s
    poll(lambda: len(bot_text(page, LIVE).split()), until=lambda n: n >= 5)
    page.get_by_role("button", name="Stop").click()
    wait_idle(page, 1)
    poll(
        lambda: cancelled_by_request(httpx.get(f"{ui_url}/metrics", timeout=10).text),
        until=lambda n: n == before + 1,
        timeout_s=10,
    )
    stopped = bot_text(page)
    mark = re.search(r"stopped · (\d+\.\d) s · (\d+) tokens", stopped)
    assert mark, stopped
    assert metric(page, "finish") == "cancelled"
    assert metric(page, "tokens") == mark.group(2)
    assert f"{float(metric(page, 'duration').split()[0]):.1f}" == mark.group(1)
    time.sleep(1.0)  # at 50 tokens/s a running answer would grow by ~50 tokens meanwhile
    assert bot_text(page) == stopped
    full = reference_text(ui_url, [{"role": "user", "content": LONG}], **SIDEBAR)
    assert len(words(stopped)) < len(words(full))
    expect(page.get_by_role("button", name="Stop")).to_be_disabled()
    # The Inspector lists the stopped answer: as many content rows as its tokens.
    page.get_by_role("tab", name="Inspector").click()
    expect(page.locator("#inspector .ssechat-ev").first).to_be_visible()
    contents = [row for row in inspector_rows(page) if row[3] == "content"]
    assert len(contents) == int(mark.group(2))


def test_retry_undo_and_edit(page: Page, ui_url: str) -> None:
    open_app(page, ui_url)
    send(page, PROMPT)
    wait_idle(page, 1)
    first = bot_text(page)
    page.get_by_role("tab", name="Inspector").click()
    before = stream_ids(page)
    page.get_by_role("tab", name="Chat").click()
    page.locator("#chat-bot").get_by_role("button", name="Retry").click()
    # The conversation looks idle before the retry starts too: wait for its own stream.
    page.get_by_role("tab", name="Inspector").click()
    poll(lambda: stream_ids(page), until=lambda ids: bool(ids) and not ids & before)
    page.get_by_role("tab", name="Chat").click()
    wait_idle(page, 1)
    assert page.locator("#chat-bot [data-testid='user']").count() == 1
    assert words(bot_text(page)) == words(first)  # same request, deterministic engine
    page.locator("#chat-bot").get_by_role("button", name="Undo").click()
    expect(page.locator(BOT)).to_have_count(0)
    expect(page.locator("#chat-input textarea")).to_have_value(PROMPT)
    # Edit the first of two questions: what came after it goes, and it is answered anew.
    send(page, PROMPT)
    wait_idle(page, 1)
    send(page, "A second question")
    wait_idle(page, 2)
    page.locator("#chat-bot").get_by_role("button", name="Edit").first.click()
    page.locator("#chat-bot textarea").first.fill("An edited question")
    page.locator("#chat-bot").get_by_role("button", name="Submit").click()
    wait_idle(page, 1)
    assert page.locator(USER).all_inner_texts() == ["An edited question"]
    expected = reference_text(
        ui_url, [{"role": "user", "content": "An edited question"}], **SIDEBAR
    )
    assert words(bot_text(page)) == words(expected)


def test_saved_chats_survive_a_reload(page: Page, ui_url: str) -> None:
    open_app(page, ui_url)
    send(page, "A question worth keeping")
    wait_idle(page, 1)
    answer = bot_text(page)
    page.reload()
    open_app(page, ui_url)
    saved = page.locator("#saved-chats")
    expect(saved).to_contain_text("A question worth keeping")
    expect(page.locator(BOT)).to_have_count(0)  # a reload starts a new chat
    saved.get_by_text("A question worth keeping").click()
    expect(page.locator(BOT)).to_have_count(1)
    assert bot_text(page) == answer
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(BOT)).to_have_count(0)


def test_the_model_is_presented_honestly(page: Page, ui_url: str) -> None:
    open_app(page, ui_url)
    expect(page.locator(".ssechat-header")).to_contain_text("not a language model")
    expect(page.locator("#chat-bot")).to_contain_text("SSECHAT_ENGINE=openai")
    placeholder = page.locator("#chat-input textarea").get_attribute("placeholder") or ""
    assert "simulated" in placeholder
    assert "Ask anything" not in placeholder
    expect(page.locator(".ssechat-header [data-pill='health']")).to_contain_text("ok")


def test_every_control_has_an_accessible_name_and_tabs_switch_cleanly(
    page: Page, ui_url: str
) -> None:
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", console)
    open_app(page, ui_url)
    send(page, PROMPT)
    expect(page.get_by_role("button", name="Stop")).to_be_enabled()
    wait_idle(page, 1)
    nameless: list[str] = []
    for tab in ("Chat", "Compare", "Inspector"):
        page.get_by_role("tab", name=tab).click()
        if tab == "Compare":
            for name in ("A: settings", "B: settings"):
                page.get_by_role("button", name=name).click()
        snapshot = page.locator("body").aria_snapshot()
        nameless += [
            f"{tab}: {line.strip()}"
            for line in snapshot.splitlines()
            if re.match(rf"\s*- ({NAMED_ROLES})\b(?!\s*\")", line)
        ]
    assert not nameless, nameless
    for tab in ("Inspector", "Chat", "Compare", "Chat"):  # switched back and forth
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
    assert not errors, errors

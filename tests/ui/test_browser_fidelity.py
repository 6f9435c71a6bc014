"""Every delta kind, in every dialect, drawn in a real browser: reasoning as a "Thinking"
block while it streams, tool calls as blocks with name and arguments, the answer below;
the Inspector lists them by kind and event name; ``/demo`` reads the typed events.

The backend is scripted (``tests/ui/scripted_backend.py``: the client tests' byte
fixtures on a real socket), and each stream waits after 3 events until the test
releases it, so what is on screen mid-answer is checked without racing it.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.ui.helpers import ANSWER, LIVE, open_app, send, wait_idle
from tests.ui.scripted_backend import ScriptedBackend

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

Scripted = tuple[ScriptedBackend, str]


def release(scripted: Scripted) -> None:
    httpx.post(f"{scripted[1]}/scripted/release", timeout=10).raise_for_status()


def choose_dialect(page: Page, label: str) -> None:
    box = page.get_by_label("Dialect (wire format)")
    box.click()
    page.get_by_role("option", name=label).click()
    expect(box).to_have_value(label)


def test_reasoning_streams_as_a_thinking_block_then_tools_then_the_answer(
    page: Page, scripted_ui_url: str, scripted: Scripted
) -> None:
    open_app(page, scripted_ui_url)
    send(page, "Weather in Oslo?")
    # Paused after the reasoning deltas: an open "Thinking" block with a spinner.
    thinking = page.locator(f"{LIVE} .thought-group").filter(has_text="Thinking")
    expect(thinking).to_contain_text("Let me see.", timeout=30_000)
    expect(thinking.locator(".loading-spinner")).to_have_count(1)
    release(scripted)
    wait_idle(page, 1)
    answer = page.locator(ANSWER).last
    done = answer.locator(".thought-group").filter(has_text="Thinking")
    expect(done.locator(".loading-spinner")).to_have_count(0)  # finished: no spinner
    expect(done.locator(".duration")).to_be_visible()
    weather = answer.locator(".thought-group").filter(has_text="Tool call: weather")
    expect(weather).to_contain_text("call_a")
    weather.locator(".title").click()  # closed once done; open on demand
    expect(weather).to_contain_text('"city": "Oslo"')
    expect(answer.locator(".thought-group").filter(has_text="Tool call: time")).to_have_count(1)
    expect(answer).to_contain_text("Calling")
    assert page.locator("#chat-metrics [data-metric='finish'] .ssechat-value").inner_text() == (
        "tool_calls"
    )
    # The Inspector lists reasoning and tool-call events, and filters by kind.
    page.get_by_role("tab", name="Inspector").click()
    events = page.locator("#inspector")
    expect(events.locator(".ssechat-ev[data-kind='reasoning']")).to_have_count(2)
    expect(events.locator(".ssechat-ev[data-kind='tool_call']")).to_have_count(4)
    kinds = page.locator("#inspector-kinds")
    for kind in ("content", "usage", "error", "other", "reasoning"):
        kinds.get_by_label(kind, exact=True).uncheck()
    expect(events.locator(".ssechat-ev")).to_have_count(4)
    expect(events.locator(".ssechat-ev[data-kind='tool_call']")).to_have_count(4)


@pytest.mark.parametrize(
    ("label", "thinking", "text", "tool", "event_name"),
    [
        ("Responses", "Think", "Hello 🚀", "Tool call: get_weather", "response.output_text.delta"),
        ("Messages (Anthropic)", "Hmm", "Grüß dich", "Tool call: lookup", "content_block_delta"),
    ],
)
def test_the_dialect_choice_reads_each_wire_format(
    page: Page,
    scripted_ui_url: str,
    scripted: Scripted,
    label: str,
    thinking: str,
    text: str,
    tool: str,
    event_name: str,
) -> None:
    open_app(page, scripted_ui_url)
    choose_dialect(page, label)
    send(page, "Hi?")
    expect(page.locator(LIVE)).to_be_visible(timeout=30_000)
    release(scripted)
    wait_idle(page, 1)
    answer = page.locator(ANSWER).last
    block = answer.locator(".thought-group").filter(has_text="Thinking")
    block.locator(".title").click()  # closed once done; open on demand
    expect(block.locator(".content")).to_contain_text(thinking)
    expect(answer.locator(".thought-group").filter(has_text=tool)).to_have_count(1)
    expect(answer).to_contain_text(text)
    expect(page.locator("#chat-metrics")).to_contain_text(label)
    page.get_by_role("tab", name="Inspector").click()
    expect(page.locator("#inspector")).to_contain_text(event_name)


def test_stop_mid_reasoning_cancels_on_the_dialects_route(
    page: Page, scripted_ui_url: str, scripted: Scripted
) -> None:
    backend, _ = scripted
    open_app(page, scripted_ui_url)
    send(page, "Weather in Oslo?")
    expect(page.locator(f"{LIVE} .thought-group")).to_contain_text("Let me", timeout=30_000)
    page.get_by_role("button", name="Stop").click()
    wait_idle(page, 1)
    expect(page.locator(ANSWER).last).to_contain_text("stopped ·")
    assert backend.cancelled[-1].startswith("chatcmpl-x-")
    release(scripted)  # let the paused stream see its cancel and end


@pytest.mark.parametrize(
    ("dialect", "first_event", "text"),
    [
        ("responses", "response.created", "Hello 🚀"),
        ("messages", "message_start", "Grüß dich"),
    ],
)
def test_demo_reads_typed_events_with_add_event_listener(
    page: Page, scripted_ui_url: str, scripted: Scripted, dialect: str, first_event: str, text: str
) -> None:
    page.goto(f"{scripted_ui_url}/demo")  # remote mode: the page reads the backend's origin
    page.get_by_label("Dialect").select_option(dialect)
    page.get_by_role("button", name="Send").click()
    expect(page.locator("#events tr").first).to_contain_text(first_event, timeout=30_000)
    release(scripted)
    expect(page.locator("#answer")).to_have_attribute("data-done", "true", timeout=30_000)
    expect(page.locator("#answer")).to_contain_text(text)
    expect(page.locator("#events tr[data-kind='reasoning']")).not_to_have_count(0)
    expect(page.locator("#events tr[data-kind='tool_call']")).not_to_have_count(0)

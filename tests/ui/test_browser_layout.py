"""The layout at 1440, 1024, 800 and 480 px: bounding boxes of the key elements, mid-answer.

Nothing overlaps, nothing sticks out sideways; at 1440 x 900 the input, the
answer being written and its metrics are on screen together; the settings
sidebar is open on wide windows and out of the way on narrow ones; Compare
keeps its panes side by side down to 800 px.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.ui.helpers import LIVE, open_app, send, wait_idle

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

HEIGHT = 900
KEY_ELEMENTS = [
    "#ssechat-header",
    "#ssechat-tabs [role=tablist]",
    "#chat-bot",
    "#chat-live",
    "#chat-input",
    "#chat-send",
    "#chat-stop",
    "#chat-metrics",
    "#chat-timeline",
]


def boxes(page: Page, selectors: list[str]) -> dict[str, dict[str, float] | None]:
    """Bounding boxes, all read in the same frame (the answer keeps growing)."""
    found: dict[str, dict[str, float] | None] = page.evaluate(
        """(selectors) => Object.fromEntries(selectors.map(selector => {
            const element = document.querySelector(selector);
            if (!element || element.offsetParent === null) return [selector, null];
            const r = element.getBoundingClientRect();
            return [selector, {x: r.x, y: r.y, width: r.width, height: r.height}];
        }))""",
        selectors,
    )
    return found


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["width"] - 1
        and b["x"] < a["x"] + a["width"] - 1
        and a["y"] < b["y"] + b["height"] - 1
        and b["y"] < a["y"] + a["height"] - 1
    )


OPEN = re.compile(r"\bopen\b")


def sidebar_open(page: Page) -> bool:
    classes = page.locator("#ssechat-sidebar").get_attribute("class") or ""
    return "open" in classes.split()


@pytest.fixture
def sized(browser: Browser, request: pytest.FixtureRequest) -> Any:
    context = browser.new_context(viewport={"width": request.param, "height": HEIGHT})
    yield context.new_page()
    context.close()


@pytest.mark.parametrize("sized", [1440, 1024, 800, 480], indirect=True)
def test_nothing_overlaps_mid_answer(sized: Page, ui_url: str) -> None:
    page = sized
    assert page.viewport_size is not None
    width = page.viewport_size["width"]
    open_app(page, ui_url)
    sidebar = expect(page.locator("#ssechat-sidebar"))
    if width >= 1000:
        sidebar.to_have_class(OPEN, timeout=10_000)
    else:
        sidebar.not_to_have_class(OPEN, timeout=10_000)
    for turn in range(2):
        send(page, f"Turn {turn}: how do Server-Sent Events work?")
        wait_idle(page, turn + 1)
    send(page, "Tell me a long story about streaming.")
    expect(page.locator(LIVE)).to_contain_text(" ", timeout=30_000)
    found = boxes(page, KEY_ELEMENTS)
    shown = {selector: box for selector, box in found.items() if box is not None}
    assert set(KEY_ELEMENTS) == set(shown), f"not shown: {set(KEY_ELEMENTS) - set(shown)}"
    for (name_a, a), (name_b, b) in itertools.combinations(shown.items(), 2):
        assert not overlap(a, b), (width, name_a, a, name_b, b)
    for name, box in shown.items():
        assert box["x"] >= 0, (width, name, box)
        assert box["x"] + box["width"] <= width + 1, (width, name, box)
    if width == 1440:
        for name in ("#chat-live", "#chat-input", "#chat-send", "#chat-stop", "#chat-metrics"):
            box = shown[name]
            assert box["y"] >= 0, (name, box)
            assert box["y"] + box["height"] <= HEIGHT, (name, box)
    if width < 1000:
        assert not sidebar_open(page)
        page.get_by_role("button", name="Stop").click()  # not covered by anything
        wait_idle(page, 3)


def test_the_sidebar_closes_when_the_window_narrows(page: Page, ui_url: str) -> None:
    open_app(page, ui_url)
    expect(page.locator("#ssechat-sidebar")).to_have_class(OPEN, timeout=10_000)
    page.set_viewport_size({"width": 900, "height": HEIGHT})
    expect(page.locator("#ssechat-sidebar")).not_to_have_class(OPEN, timeout=10_000)
    page.get_by_role("button", name="Toggle Sidebar").click()  # still there on demand
    expect(page.locator("#ssechat-sidebar")).to_have_class(OPEN)


def test_compare_stays_side_by_side_at_800_px(browser: Browser, ui_url: str) -> None:
    context = browser.new_context(viewport={"width": 800, "height": HEIGHT})
    page = context.new_page()
    try:
        open_app(page, ui_url)
        page.get_by_role("tab", name="Compare").click()
        found = boxes(page, ["#compare-pane-a", "#compare-pane-b", "#compare-run"])
        a, b = found["#compare-pane-a"], found["#compare-pane-b"]
        assert a is not None
        assert b is not None
        assert abs(a["y"] - b["y"]) < 2
        assert b["x"] >= a["x"] + a["width"] - 1
        assert b["x"] + b["width"] <= 801
    finally:
        context.close()

"""Regenerate docs/screenshot-chat.png and docs/screenshot-compare.png.

    PYTHONPATH=. python -m tests.ui.screenshots [--out docs]

Starts ``python ui/app.py`` (embedded backend, simulated engine), drives it
with headless Chromium like a user would, and saves two screenshots.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.servers import REPO_ROOT
from tests.ui.helpers import run_ui_process

logger = logging.getLogger(__name__)

CHAT_TURNS = [
    "How do Server-Sent Events work?",
    "And what happens when the connection drops?",
]


def _wait_answer(page: Page) -> None:
    # The metrics note gains "finish:" once the answer is complete.
    expect(page.locator("#chat-metrics .ssechat-note")).to_contain_text("finish", timeout=60_000)


def chat_screenshot(page: Page, url: str, path: Path) -> None:
    page.goto(url)
    expect(page.locator(".ssechat-header")).to_contain_text("engine", timeout=30_000)
    box = page.locator("#chat-input textarea")
    for index, turn in enumerate(CHAT_TURNS):
        box.fill(turn)
        box.press("Enter")
        expect(page.locator("#chat-bot [data-testid='bot']")).to_have_count(
            index + 1, timeout=30_000
        )
        _wait_answer(page)
        # The next answer's metrics start from "finish" again: wait for the input to free up.
        expect(box).to_be_enabled(timeout=30_000)
    page.wait_for_timeout(800)  # let the plot finish its transition
    page.screenshot(path=str(path), full_page=True)


def compare_screenshot(page: Page, url: str, path: Path) -> None:
    page.goto(url)
    expect(page.locator(".ssechat-header")).to_contain_text("engine", timeout=30_000)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("button", name="Run both").click()
    for pane in ("a", "b"):
        expect(page.locator(f"#compare-metrics-{pane} .ssechat-note")).to_contain_text(
            "finish", timeout=60_000
        )
    page.wait_for_timeout(800)
    page.screenshot(path=str(path), full_page=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=960)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    args.out.mkdir(parents=True, exist_ok=True)
    with run_ui_process({"SSECHAT_SIM_TOKENS_PER_S": "80"}) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, shoot in (("chat", chat_screenshot), ("compare", compare_screenshot)):
                context = browser.new_context(
                    viewport={"width": args.width, "height": args.height},
                    device_scale_factor=1,
                )
                path = args.out / f"screenshot-{name}.png"
                shoot(context.new_page(), url, path)
                context.close()
                logger.info("wrote %s", path)
        finally:
            browser.close()


if __name__ == "__main__":
    main()

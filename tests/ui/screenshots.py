"""Regenerate the README's screenshots (docs/screenshot-*.png) from the default engine.

    PYTHONPATH=. python -m tests.ui.screenshots [--out docs] [--engine auto]

Starts ``python ui/app.py`` as ``make run`` does (the default engine: the local
Gemma 3 270M model, or the simulated engine where it cannot load, which the
header then says), drives it with headless Chromium like a user would, and
saves the Chat tab at 1440, 1024, 800 and 480 px wide, Compare at 1440 and
800 px, and the Inspector at 1440 px, all 900 px high.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.servers import REPO_ROOT
from tests.ui.helpers import open_app, run_ui_process, send, wait_compare, wait_idle

logger = logging.getLogger(__name__)

HEIGHT = 900
CHAT_WIDTHS = (1440, 1024, 800, 480)
COMPARE_WIDTHS = (1440, 800)
CHAT_TURNS = [
    "Server-Sent Events are",
    "Why does a streamed answer feel faster?",
]


def chat(page: Page, url: str) -> None:
    open_app(page, url)
    for index, turn in enumerate(CHAT_TURNS):
        send(page, turn)
        wait_idle(page, index + 1, timeout_ms=120_000)
    page.wait_for_timeout(800)  # let the plot finish its transition


def compare(page: Page, url: str) -> None:
    open_app(page, url)
    page.get_by_role("tab", name="Compare").click()
    page.get_by_role("button", name="Run both").click()
    wait_compare(page, timeout_ms=120_000)
    page.wait_for_timeout(800)


def inspector(page: Page, url: str) -> None:
    chat(page, url)
    page.get_by_role("tab", name="Inspector").click()
    page.locator("#inspector .ssechat-ev > summary").nth(2).click()
    page.wait_for_timeout(300)


def shoot(browser: Browser, url: str, name: str, width: int, out: Path) -> None:
    context = browser.new_context(viewport={"width": width, "height": HEIGHT})
    try:
        page = context.new_page()
        {"chat": chat, "compare": compare, "inspector": inspector}[name](page, url)
        path = out / f"screenshot-{name}-{width}.png"
        page.screenshot(path=str(path))
        logger.info("wrote %s", path)
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs")
    parser.add_argument("--engine", default="auto", help="SSECHAT_ENGINE (default: auto)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    args.out.mkdir(parents=True, exist_ok=True)
    with run_ui_process({"SSECHAT_ENGINE": args.engine}) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width in CHAT_WIDTHS:
                shoot(browser, url, "chat", width, args.out)
            for width in COMPARE_WIDTHS:
                shoot(browser, url, "compare", width, args.out)
            shoot(browser, url, "inspector", 1440, args.out)
        finally:
            browser.close()


if __name__ == "__main__":
    main()

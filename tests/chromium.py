"""How tests and benchmarks start Debian's Chromium through Playwright.

``playwright install`` cannot download browsers here, so everything drives
``/usr/bin/chromium``. The background-networking flags keep Chromium from
reaching for Google's services, which the closed network refuses many
times a start.
"""

from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

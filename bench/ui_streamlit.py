"""Streamlit twin benchmark: event-to-visible latency in the browser, server CPU per token.

    PYTHONPATH=. python bench/ui_streamlit.py [--tokens 100]

The same stream as ``bench/ui_latency.py`` (its clock engine stamps each token
with its emit time, 20 tokens/s), the same browser (headless Chromium), under
``streamlit run bench/ui_streamlit_app.py``: the twin's page with its backend
embedded in the same process, as the Gradio app is. A ``MutationObserver``
records when each token's text is in the last chat message (DOM) and one
animation frame later (painted). CPU is the Streamlit process's utime + stime
(page, client and backend) over the answer, divided by its tokens.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from typing import Any

from bench.support import arrival_observer_js
from bench.ui_latency import descendants_cpu_s, percentile
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.ui.streamlit_helpers import streamlit_process

logger = logging.getLogger("bench.ui_streamlit")
CLK_TCK = os.sysconf("SC_CLK_TCK")

OBSERVER_JS = arrival_observer_js("body", "[data-testid='stChatMessage']")


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def measure(tokens: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    env = {"SSECHAT_ENGINE": "simulated", "SSECHAT_LOG_LEVEL": "warning"}
    with (
        streamlit_process("bench/ui_streamlit_app.py", env=env, repo_on_path=True) as server,
        sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(server.url)
        page.get_by_text("engine simulated").wait_for(timeout=120_000)
        box = page.locator("[data-testid='stChatInputTextArea']")

        def ask(text: str) -> None:
            box.fill(text)
            box.press("Enter")

        def wait_done(run: str, count: int) -> None:
            deadline = time.monotonic() + count / 20.0 * 4 + 60
            while time.monotonic() < deadline:
                seen = page.evaluate("window.__bench ? window.__bench.samples.length : 0")
                if seen >= count and page.locator(".st-key-stop").count() == 0:
                    return
                time.sleep(0.05)
            raise RuntimeError(f"run {run}: not all {count} tokens seen")

        # Warm-up (imports, first connection), not measured.
        page.evaluate(OBSERVER_JS, "warm")
        ask("measure warm 10")
        wait_done("warm", 10)
        page.evaluate("window.__bench.stop()")
        run = "r" + uuid.uuid4().hex[:6]
        page.evaluate(OBSERVER_JS, run)
        pid = server.process.pid
        cpu_before, browser_before = cpu_s(pid), descendants_cpu_s(os.getpid())
        ask(f"measure {run} {tokens}")
        wait_done(run, tokens)
        page.wait_for_timeout(100)
        cpu_used = cpu_s(pid) - cpu_before
        browser_used = descendants_cpu_s(os.getpid()) - browser_before - cpu_used
        samples: list[dict[str, Any]] = page.evaluate("window.__bench.samples")
        browser.close()
    dom = [s["dom"] - s["emitted"] for s in samples]
    paint = [s["paint"] - s["emitted"] for s in samples if s["paint"] is not None]
    return {
        "tokens": tokens,
        "dom": dom,
        "paint": paint,
        "cpu_ms_per_token": cpu_used * 1000 / tokens,
        "browser_cpu_ms_per_token": browser_used * 1000 / tokens,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Streamlit twin latency and CPU benchmark")
    parser.add_argument("--tokens", type=int, default=100, help="tokens in the measured answer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    r = measure(args.tokens)
    sys.stdout.write(
        "\n| path | rate (tokens/s) | tokens | added latency p50 / p95, DOM (ms) "
        "| p50 / p95, painted (ms) | server CPU per token (ms) | browser CPU per token (ms) |\n"
        "|---|---:|---:|---:|---:|---:|---:|\n"
        f"| browser (Streamlit twin) | 20 | {r['tokens']} "
        f"| {percentile(r['dom'], 50):.1f} / {percentile(r['dom'], 95):.1f} "
        f"| {percentile(r['paint'], 50):.1f} / {percentile(r['paint'], 95):.1f} "
        f"| {r['cpu_ms_per_token']:.2f} | {r['browser_cpu_ms_per_token']:.2f} |\n"
    )


if __name__ == "__main__":
    main()

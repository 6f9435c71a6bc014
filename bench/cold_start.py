"""Section 5: cold start, ``python ui/app.py`` to the first streamed token, local model.

Each run spawns ``python ui/app.py`` (``SSECHAT_ENGINE=llama``, so a missing
model fails loudly instead of falling back) and times, from the spawn:

- ``/healthz`` answering (API up, model loaded: the lifespan loads it first),
- the first token of a streamed answer through the API (``POST
  /v1/chat/completions``, raw SSE over httpx),
- in Chromium (started before the spawn, not counted): the page loaded,
  a prompt typed into the chat box, and the first text of the answer in the
  chat (Gradio's bot message in the DOM).

The browser and API paths run in separate spawns so neither warms the other.
"After install": the model file is assembled before the first run.
``python -m bench.cold_start [--runs 2] [--no-browser]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.support import HOST, RESULTS, ROOT, bench_env, free_port, http_get, write_json
from tests.chromium import CHROMIUM, CHROMIUM_ARGS

logger = logging.getLogger("bench.cold_start")

PROMPT = "Name three colours."
BOT = "#chat-bot [data-testid='bot']"


def _spawn(port: int, log_path: Path) -> tuple[subprocess.Popen[bytes], float]:
    env = bench_env(
        {
            "SSECHAT_ENGINE": "llama",
            "GRADIO_SERVER_NAME": HOST,
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_ANALYTICS_ENABLED": "False",
        }
    )
    env.pop("SSECHAT_BACKEND_URL", None)
    log = log_path.open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "ui/app.py"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    return process, started


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _wait_health(
    process: subprocess.Popen[bytes], base: str, started: float, timeout_s: float
) -> tuple[float, dict[str, Any]]:
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ui/app.py exited with {process.returncode}")
        with contextlib.suppress(OSError):
            status, body = http_get(base + "/healthz", timeout=1.0)
            if status == 200:
                health: dict[str, Any] = json.loads(body)
                return time.perf_counter() - started, health
        time.sleep(0.02)
    raise RuntimeError(f"/healthz did not answer within {timeout_s} s")


def api_run(timeout_s: float) -> dict[str, Any]:
    import httpx

    port = free_port()
    base = f"http://{HOST}:{port}"
    process, started = _spawn(port, RESULTS / "cold_start-api.log")
    try:
        health_s, health = _wait_health(process, base, started, timeout_s)
        body = {
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "max_tokens": 16,
        }
        first_token_s = float("nan")
        with (
            httpx.Client(timeout=60) as client,
            client.stream("POST", base + "/v1/chat/completions", json=body) as response,
        ):
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: {") and '"content":"' in line:
                    if '"content":""' in line:
                        continue  # the role chunk
                    first_token_s = time.perf_counter() - started
                    break
        return {
            "healthz_s": health_s,
            "engine": health.get("engine"),
            "first_token_api_s": first_token_s,
        }
    finally:
        _stop(process)


def browser_run(timeout_s: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    port = free_port()
    base = f"http://{HOST}:{port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        process, started = _spawn(port, RESULTS / "cold_start-browser.log")
        try:
            health_s, health = _wait_health(process, base, started, timeout_s)
            page.goto(base + "/", timeout=timeout_s * 1000)
            box = page.locator("#chat-input textarea")
            box.wait_for(state="visible", timeout=timeout_s * 1000)
            page_s = time.perf_counter() - started
            box.fill(PROMPT)
            box.press("Enter")
            page.wait_for_function(
                """(sel) => {
                    const bots = document.querySelectorAll(sel);
                    return bots.length > 0 && bots[bots.length - 1].innerText.trim().length > 0;
                }""",
                arg=BOT,
                timeout=timeout_s * 1000,
                polling="raf",
            )
            first_token_s = time.perf_counter() - started
        finally:
            _stop(process)
            browser.close()
    return {
        "healthz_s": health_s,
        "engine": health.get("engine"),
        "page_ready_s": page_s,
        "first_token_browser_s": first_token_s,
    }


def run(runs: int, browser: bool, timeout_s: float) -> dict[str, Any]:
    from backend.engines.llama import default_model_path

    default_model_path()  # "after install": the .gguf is assembled once, before timing
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import time; t = time.perf_counter(); import gradio; print(time.perf_counter() - t)",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    gradio_import_s = float(probe.stdout.strip() or "nan")
    results: list[dict[str, Any]] = []
    for index in range(runs):
        api = api_run(timeout_s)
        logger.info("run %d API: %s", index, api)
        row: dict[str, Any] = {"api": api}
        if browser:
            try:
                row["browser"] = browser_run(timeout_s)
                logger.info("run %d browser: %s", index, row["browser"])
            except Exception as error:  # the UI may not be ready; keep the API figures
                logger.warning("browser run failed: %s", error)
                row["browser_error"] = str(error)[:300]
        results.append(row)
    return {
        "prompt": PROMPT,
        "gradio_import_s": gradio_import_s,
        "runs": results,
        "finished_at": time.time(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per stage")
    parser.add_argument("--out", type=Path, default=RESULTS / "cold_start.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run(args.runs, not args.no_browser, args.timeout)
    write_json(args.out, result)
    sys.stdout.write(json.dumps(result["runs"], indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Helpers shared by the UI tests and the screenshot script: run ``python ui/app.py``,
read Prometheus counters, ask the backend for a reference answer, drive the page."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.servers import free_port, serve_process

# A modest rate: answers take long enough to watch them grow, stop and resume.
TOKENS_PER_S = 50.0


@contextlib.contextmanager
def run_ui_process(
    env: Mapping[str, str] | None = None, *, startup_timeout_s: float = 90.0
) -> Iterator[str]:
    """Run ``python ui/app.py`` from the repository root, as a Space would; yield its URL.

    Ready means the Gradio page answers 200 (in embedded mode the API is up by then too).
    """
    with ui_process(env, startup_timeout_s=startup_timeout_s) as (url, _process):
        yield url


@contextlib.contextmanager
def ui_process(
    env: Mapping[str, str] | None = None, *, startup_timeout_s: float = 90.0
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``run_ui_process``, also yielding the process (for signal tests)."""
    port = free_port()
    ui_env = {
        "SSECHAT_ENGINE": "simulated",
        "SSECHAT_SIM_TOKENS_PER_S": str(TOKENS_PER_S),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        **(env or {}),
    }
    # Deliberately no PYTHONPATH: ui/app.py must find the repository by itself.
    with serve_process(
        [sys.executable, "ui/app.py"],
        port=port,
        env=ui_env,
        ready_path="/",
        startup_timeout_s=startup_timeout_s,
        repo_on_path=False,
    ) as server:
        yield server.url, server.process


def cancellations(metrics_text: str) -> float:
    """Sum of every sample of the metric(s) whose name contains ``cancel`` (Prometheus text)."""
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if "cancel" in name and not name.endswith("_created"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def cancelled_by_request(metrics_text: str) -> float:
    """Samples of the cancel metric labelled ``cancelled`` (an explicit cancel, not abandonment)."""
    total = 0.0
    for line in metrics_text.splitlines():
        name = line.split("{", 1)[0]
        if "cancel" in name and not line.startswith("#") and '"cancelled"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def reference_text(base_url: str, messages: list[dict[str, str]], **params: Any) -> str:
    """The backend's non-streamed answer to the same request (the simulated engine is
    deterministic: same messages and parameters, same text)."""
    body = {"messages": messages, "stream": False, **params}
    response = httpx.post(f"{base_url}/v1/chat/completions", json=body, timeout=60)
    response.raise_for_status()
    text: str = response.json()["choices"][0]["message"]["content"]
    return text


# --------------------------------------------------------------------------- browser


BOT = "#chat-bot [data-testid='bot']"  # one per message (an answer may be several)
USER = "#chat-bot [data-testid='user']"
ANSWER = "#chat-bot .bot-row"  # one bubble per answer: thinking, tool calls, text
LIVE = "#chat-live [data-testid='bot']"


def words(text: str) -> str:
    """Rendered Markdown differs from the raw text only in whitespace for these answers."""
    return " ".join(text.split())


def last_text(page: Page, selector: str, inner: str | None = None) -> str:
    """The text of the last element matching ``selector`` (or of the first ``inner``
    match inside it), or "": read in one evaluation, since a streaming answer can be
    replaced between a count and a read."""
    text: str = page.evaluate(
        """([selector, inner]) => {
            const all = document.querySelectorAll(selector);
            let node = all.length ? all[all.length - 1] : null;
            if (node && inner) node = node.querySelector(inner);
            return node ? node.innerText : '';
        }""",
        [selector, inner],
    )
    return text


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


def open_app(page: Page, url: str) -> None:
    """Load the UI and wait for the header to show the backend's answer to /healthz."""
    page.goto(url)
    expect(page.locator("#chat-input textarea")).to_be_visible(timeout=30_000)
    expect(page.locator(".ssechat-header")).to_contain_text("engine", timeout=30_000)


def send(page: Page, text: str) -> None:
    box = page.locator("#chat-input textarea")
    box.fill(text)
    box.press("Enter")


def wait_idle(page: Page, questions: int, timeout_ms: float = 30_000) -> None:
    """Until the conversation holds ``questions`` questions, the last one's answer has
    moved in from the live answer, and Send is usable again."""
    expect(page.locator(USER)).to_have_count(questions, timeout=timeout_ms)
    expect(page.locator(LIVE)).to_have_count(0, timeout=timeout_ms)
    expect(page.locator("#chat-send")).to_be_enabled(timeout=timeout_ms)


def metric(page: Page, key: str, scope: str = "#chat-metrics") -> str:
    """The value of one metric card (``ttft``, ``rate``, ``tokens``, ``duration``, ``finish``)."""
    return page.locator(f"{scope} [data-metric='{key}'] .ssechat-value").inner_text()


def wait_compare(page: Page, timeout_ms: float = 30_000) -> None:
    """Until both Compare panes have a finish reason and Run both is usable again."""
    for pane in ("a", "b"):
        card = page.locator(f"#compare-metrics-{pane} [data-metric='finish'] .ssechat-value")
        expect(card).not_to_have_text(re.compile("^(–|streaming…|waiting…)$"), timeout=timeout_ms)
    expect(page.get_by_role("button", name="Run both")).to_be_enabled(timeout=timeout_ms)

"""Helpers shared by the UI tests and the screenshot script: run ``python ui/app.py``,
read Prometheus counters, ask the backend for a reference answer."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import httpx

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

"""Helpers shared by the UI tests and the screenshot script: run ``python ui/app.py``,
read Prometheus counters, ask the backend for a reference answer."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from typing import IO, Any

import httpx

from tests.servers import REPO_ROOT, free_port

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
    child_env = dict(os.environ)
    child_env.update(
        {
            "SSECHAT_ENGINE": "simulated",
            "SSECHAT_SIM_TOKENS_PER_S": str(TOKENS_PER_S),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            "PYTHONUNBUFFERED": "1",
        }
    )
    child_env.update(env or {})
    # Deliberately no PYTHONPATH: ui/app.py must find the repository by itself.
    child_env.pop("PYTHONPATH", None)
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "ui/app.py"],
            cwd=REPO_ROOT,
            env=child_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_ready(process, url, startup_timeout_s, log)
            yield url, process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_ready(
    process: subprocess.Popen[bytes], url: str, timeout_s: float, log: IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"ui/app.py exited with {process.returncode}:\n{_tail(log)}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{url}/").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"ui/app.py not ready after {timeout_s}s:\n{_tail(log)}")
            time.sleep(0.2)


def _tail(log: IO[bytes], limit: int = 4000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-limit:]


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

"""Real servers on real sockets for tests: an ASGI app in a thread, or a backend process.

Two context managers, both yielding the base URL (``http://127.0.0.1:PORT``,
no trailing slash):

- ``serve_app(app)`` runs any ASGI app under uvicorn in a background thread
  with its own event loop, on a port the OS picks (the socket is bound before
  uvicorn starts, so there is no race for the port). Works from sync and async
  tests alike: the test's event loop and the server's never share anything.
- ``run_backend_process(env, args)`` starts ``python -m backend`` as a child
  process on a free port, waits until ``GET /healthz`` answers 200, and stops
  it on exit (SIGTERM, then SIGKILL). Its output goes to a temporary file that
  is quoted in the error if the process fails to come up.

Why a thread rather than an asyncio task in the test's loop: an in-loop server
would hide bugs where a client blocks the loop, and httpx.ASGITransport
buffers whole streaming responses, so neither shows real streaming behaviour.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn

__all__ = ["REPO_ROOT", "ASGIApp", "free_port", "run_backend_process", "serve_app"]

# Any ASGI 3 callable: FastAPI/Starlette apps, raw ``async def app(scope, receive, send)``.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago (for child processes that bind it themselves)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_app(
    app: ASGIApp,
    *,
    startup_timeout_s: float = 10.0,
    shutdown_timeout_s: float = 2.0,
    **config: object,
) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yield its base URL.

    ``config`` is passed to ``uvicorn.Config`` (e.g. ``lifespan="off"``,
    ``http="h11"``). On exit, connections still open after
    ``shutdown_timeout_s`` (a stream that never ends) are cancelled, so a
    stalled handler cannot hang the test session.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    port = sock.getsockname()[1]
    options: dict[str, object] = {"log_level": "warning", "timeout_graceful_shutdown": 1.0}
    options.update(config)
    server = uvicorn.Server(uvicorn.Config(app, **options))  # type: ignore[arg-type]
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn:{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + startup_timeout_s
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"uvicorn on port {port} exited during startup (see log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn on port {port} did not start in {startup_timeout_s}s")
            time.sleep(0.01)
        yield f"http://{HOST}:{port}"
    finally:
        server.should_exit = True
        thread.join(shutdown_timeout_s + 3.0)
        if thread.is_alive():
            server.force_exit = True
            thread.join(2.0)
        sock.close()


@contextlib.contextmanager
def run_backend_process(
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    *,
    python: str = sys.executable,
    startup_timeout_s: float = 60.0,
    stop_timeout_s: float = 10.0,
) -> Iterator[str]:
    """Run ``python -m backend --host 127.0.0.1 --port P *args``; yield its base URL.

    ``env`` is added to a copy of the current environment (settings go in as
    ``SSECHAT_*`` variables); ``PYTHONPATH`` gains the repository root so the
    child imports this checkout. Ready means ``GET /healthz`` returned 200.
    """
    port = free_port()
    child_env = dict(os.environ)
    child_env.update(env or {})
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), child_env.get("PYTHONPATH", "")) if p
    )
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    command = [python, "-m", "backend", "--host", HOST, "--port", str(port), *args]
    base_url = f"http://{HOST}:{port}"
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, env=child_env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            _wait_healthy(process, base_url, startup_timeout_s, log)
            yield base_url
        finally:
            _stop(process, stop_timeout_s)


def _wait_healthy(
    process: subprocess.Popen[bytes], base_url: str, timeout_s: float, log: IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"backend exited with {process.returncode} before it was healthy:\n"
                    + _tail(log)
                )
            try:
                if client.get(f"{base_url}/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"backend at {base_url} not healthy after {timeout_s}s:\n" + _tail(log)
                )
            time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(log: IO[bytes], limit: int = 4000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-limit:]

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
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn

__all__ = [
    "REPO_ROOT",
    "ASGIApp",
    "ChildServer",
    "backend_process",
    "free_port",
    "run_backend_process",
    "serve_app",
    "serve_process",
]

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


@dataclass
class ChildServer:
    """A server running as a child process: its URL, the process, and its output."""

    url: str
    process: subprocess.Popen[bytes]
    _log: IO[bytes]

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then the exit status; a process that ignores it fails the test."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"ignored SIGTERM for {timeout_s}s:\n{self.log()}") from None


@contextlib.contextmanager
def serve_process(
    command: Sequence[str],
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    ready_path: str = "/healthz",
    startup_timeout_s: float = 60.0,
    repo_on_path: bool = True,
) -> Iterator[ChildServer]:
    """Run ``command`` from the repository root until ``GET ready_path`` answers 200.

    The child gets this environment minus every ``SSECHAT_*`` variable (tests
    are hermetic), plus ``env``. ``repo_on_path=False`` also drops
    ``PYTHONPATH``, for a program that must find the repository by itself.
    On exit: SIGTERM, then SIGKILL after 15 s.
    """
    child_env = {key: value for key, value in os.environ.items() if not key.startswith("SSECHAT_")}
    child_env["PYTHONUNBUFFERED"] = "1"
    if repo_on_path:
        child_env["PYTHONPATH"] = str(REPO_ROOT)
    else:
        child_env.pop("PYTHONPATH", None)
    child_env.update(env or {})
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            list(command), env=child_env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        server = ChildServer(f"http://{HOST}:{port}", process, log)
        try:
            _wait_ready(server, " ".join(command[1:3]), ready_path, startup_timeout_s)
            yield server
        finally:
            if process.poll() is None:
                with contextlib.suppress(AssertionError):
                    server.terminate()


def _wait_ready(server: ChildServer, name: str, ready_path: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                code = server.process.returncode
                raise RuntimeError(f"{name} exited with {code}:\n{server.log()[-4000:]}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{server.url}{ready_path}").status_code == 200:
                    return
            if time.monotonic() > deadline:
                message = f"{name} not ready after {timeout_s}s:\n{server.log()[-4000:]}"
                raise RuntimeError(message)
            time.sleep(0.05)


@contextlib.contextmanager
def backend_process(
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    *,
    startup_timeout_s: float = 60.0,
) -> Iterator[ChildServer]:
    """``python -m backend --host 127.0.0.1 --port P *args``, ready when /healthz is 200."""
    port = free_port()
    command = [sys.executable, "-m", "backend", "--host", HOST, "--port", str(port), *args]
    with serve_process(command, port=port, env=env, startup_timeout_s=startup_timeout_s) as server:
        yield server


@contextlib.contextmanager
def run_backend_process(
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    *,
    startup_timeout_s: float = 60.0,
) -> Iterator[str]:
    """``backend_process``, yielding only the base URL."""
    with backend_process(env, args, startup_timeout_s=startup_timeout_s) as server:
        yield server.url

"""``python -m backend`` as a child process whose exit and output a test can inspect.

``tests.servers.run_backend_process`` yields only the URL; the hardening tests
also need the process (to signal it and read its exit status) and its log
(to prove what is, and is not, written there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

import httpx

from tests.servers import HOST, REPO_ROOT, free_port


@dataclass
class Backend:
    url: str
    process: subprocess.Popen[bytes]
    _log: IO[bytes]

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def terminate(self, timeout_s: float = 15.0) -> int:
        """SIGTERM, then wait for the exit status (SIGKILL after ``timeout_s``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            message = f"backend ignored SIGTERM for {timeout_s}s:\n{self.log()}"
            raise AssertionError(message) from None


@contextlib.contextmanager
def backend_process(
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    *,
    startup_timeout_s: float = 30.0,
) -> Iterator[Backend]:
    """Start ``python -m backend`` on a free port with ``env`` added; wait for /healthz."""
    port = free_port()
    child_env = {key: value for key, value in os.environ.items() if not key.startswith("SSECHAT_")}
    child_env.update(env or {})
    child_env["PYTHONPATH"] = str(REPO_ROOT)
    child_env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "-m", "backend", "--host", HOST, "--port", str(port), *args]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            command, env=child_env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        backend = Backend(f"http://{HOST}:{port}", process, log)
        try:
            _wait_healthy(backend, startup_timeout_s)
            yield backend
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_healthy(backend: Backend, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while True:
            if backend.process.poll() is not None:
                raise RuntimeError(
                    f"backend exited with {backend.process.returncode}:\n{backend.log()[-4000:]}"
                )
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{backend.url}/healthz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"backend not healthy in {timeout_s}s:\n{backend.log()[-4000:]}")
            time.sleep(0.05)

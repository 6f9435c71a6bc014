"""A real ``redis-server`` for tests, on a free port, stoppable and restartable.

``run_redis_server()`` starts ``redis-server --port P --save '' --appendonly no``
(nothing on disk unless ``persistent=True``), waits until it answers PING,
and kills it on exit. ``stop()`` / ``start()`` take it down and bring it back
on the same port, so tests can cut Redis away from a running backend.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.servers import free_port

__all__ = ["RedisServer", "redis_server_binary", "run_redis_server"]

HOST = "127.0.0.1"


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


class RedisServer:
    """One redis-server process; ``url`` stays valid across ``stop()`` / ``start()``."""

    def __init__(self, binary: str, port: int, directory: Path, *, persistent: bool) -> None:
        self.binary = binary
        self.port = port
        self.directory = directory
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        durability = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persistent
            else ["--appendonly", "no"]
        )
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            *durability,
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.log_path),
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout_s
        while not self._answers_ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at startup:\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server not answering after {timeout_s}s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Shut it down (SIGTERM: an AOF server writes its data first), then wait."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def command(self, *args: str) -> str:
        """Send one inline command; return the first reply line (tests' admin channel)."""
        with socket.create_connection((HOST, self.port), timeout=5) as sock:
            sock.sendall((" ".join(args) + "\r\n").encode())
            return sock.makefile("rb").readline().decode().rstrip("\r\n")

    def flush(self) -> None:
        reply = self.command("FLUSHALL")
        if reply != "+OK":
            raise RuntimeError(f"FLUSHALL answered {reply!r}")

    def _answers_ping(self) -> bool:
        try:
            return self.command("PING") == "+PONG"
        except OSError:
            return False

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def run_redis_server(*, persistent: bool = False) -> Iterator[RedisServer]:
    """A started redis-server on a free port; killed (and its directory removed) on exit."""
    binary = redis_server_binary()
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    with tempfile.TemporaryDirectory(prefix="ssechat-redis-") as directory:
        server = RedisServer(binary, free_port(HOST), Path(directory), persistent=persistent)
        server.start()
        try:
            yield server
        finally:
            server.stop()

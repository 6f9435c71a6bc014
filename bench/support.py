"""What every benchmark needs: free ports, pinned server processes, /proc sampling, machine facts.

Only loopback, only processes we started: a ``Server`` owns its process
group and stops exactly that.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple

logger = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
HOST = "127.0.0.1"

# Server on core 0, load generator on core 1 (the machine has two).
SERVER_CPUS = "0"
CLIENT_CPUS = "1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def backend_command(port: int, *options: str) -> list[str]:
    """``python -m backend`` on ``port`` with ``options``, logging warnings only."""
    return [
        sys.executable,
        "-m",
        "backend",
        *options,
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def pinned(command: Sequence[str], cpus: str | None) -> list[str]:
    """``command`` under ``taskset -c cpus`` (taskset execs, so the pid stays the same)."""
    if cpus is None or shutil.which("taskset") is None:
        return list(command)
    return ["taskset", "-c", cpus, *command]


def bench_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # Our servers read SSECHAT_*: start from none so a developer's shell cannot skew a run.
    env = {key: value for key, value in os.environ.items() if not key.startswith("SSECHAT_")}
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def metric(base_url: str, series: str) -> float:
    """One sample of ``/metrics`` by its series as exposed (name plus labels); 0 if absent.
    With several workers it is the deployment's figure (backend.metrics.shared)."""
    _, body = http_get(base_url + "/metrics", timeout=10)
    pattern = rf"^{re.escape(series)} (\S+)$"
    match = re.search(pattern, body.decode("utf-8", "replace"), re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@dataclass
class Server:
    """A server process on a free port, pinned to ``cpus``, stopped on exit."""

    name: str
    command: list[str]
    port: int
    cpus: str | None = SERVER_CPUS
    env: dict[str, str] = field(default_factory=dict)
    ready_path: str = "/healthz"
    ready_timeout_s: float = 60.0
    log_path: Path | None = None
    cwd: Path = ROOT
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_after_s: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        return self.process.pid

    @property
    def log_file(self) -> Path:
        return self.log_path or RESULTS / f"server-{self.name}.log"

    def start(self) -> Server:
        RESULTS.mkdir(parents=True, exist_ok=True)
        log_path = self.log_file
        log = log_path.open("wb")
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(
            pinned(self.command, self.cpus),
            cwd=self.cwd,
            env=bench_env(self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we stop exactly it
        )
        log.close()
        self._wait_ready(log_path)
        return self

    def _wait_ready(self, log_path: Path) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.ready_timeout_s
        url = self.base_url + self.ready_path
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")
            with contextlib.suppress(OSError):
                status, _ = http_get(url, timeout=1.0)
                if status < 500:
                    self.ready_after_s = time.perf_counter() - self.started_at
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready at {url} after {self.ready_timeout_s} s")

    def pids(self) -> list[int]:
        """The server and its children (uvicorn ``--workers``)."""
        return [self.pid, *descendants(self.pid)]

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_redis(port: int) -> subprocess.Popen[bytes]:
    """A throw-away redis-server on ``port`` (nothing on disk), ready for commands."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection((HOST, port), timeout=0.5) as sock,
        ):
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("redis-server did not start")


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found.append(int(child))
                    pending.append(int(child))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (threads included), from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_queue_wait_s(pid: int) -> float:
    """Seconds the process's threads were runnable but waiting for a CPU (schedstat).

    On a shared machine this says how much of a latency figure is the
    neighbours' doing rather than ours.
    """
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


def rss_bytes(pid: int) -> int:
    try:
        statm = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0
    return int(statm[1]) * PAGE_SIZE


class Sample(NamedTuple):
    at: float  # perf_counter seconds
    cpu_s: float  # CPU seconds used so far, all sampled processes
    rss: int  # bytes
    wait_s: float  # run-queue wait so far, all sampled processes


def usage_between(first: Sample, last: Sample) -> tuple[float, float]:
    """(CPU %, run-queue wait %) of wall time between two samples."""
    wall = max(last.at - first.at, 1e-9)
    return 100 * (last.cpu_s - first.cpu_s) / wall, 100 * (last.wait_s - first.wait_s) / wall


class Sampler:
    """Samples CPU seconds and RSS of some processes every ``interval_s`` on a thread."""

    def __init__(self, pids: Sequence[int], interval_s: float = 0.05) -> None:
        self._pids = list(pids)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.samples: list[Sample] = []

    def snapshot(self) -> Sample:
        return Sample(
            time.perf_counter(),
            sum(cpu_seconds(pid) for pid in self._pids),
            sum(rss_bytes(pid) for pid in self._pids),
            sum(run_queue_wait_s(pid) for pid in self._pids),
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(self.snapshot())
            self._stop.wait(self._interval_s)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(self.snapshot())

    @property
    def peak_rss(self) -> int:
        return max((sample.rss for sample in self.samples), default=0)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile, ``q`` in [0, 100]; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in (
        "uvicorn",
        "uvloop",
        "httptools",
        "starlette",
        "fastapi",
        "sse-starlette",
        "flask",
        "werkzeug",
        "httpx",
        "openai",
        "redis",
        "gradio",
        "llama-cpp-python",
    ):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def machine() -> dict[str, str]:
    cpu_model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    memory = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    wrk = "not installed"
    if shutil.which("wrk"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=5)
            wrk = (out.stdout + out.stderr).splitlines()[0].strip()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model,
        "memory": memory,
        "kernel": platform.release(),
        "wrk": wrk,
        "python_executable": sys.executable,
    }


def write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def arrival_observer_js(root_selector: str, message_selector: str) -> str:
    """JS for ``page.evaluate(js, run)``: records, for every token of run RUN, when it
    first appeared in the last message (under ``root_selector``) and the next frame."""
    js = """
(run) => {
  const state = {run, seen: new Set(), samples: []};
  window.__bench = state;
  const pattern = new RegExp(run + "k(\\\\d+)t(\\\\d+\\\\.\\\\d)", "g");
  const root = document.querySelector(ROOT);
  const observer = new MutationObserver(() => {
    const bots = root.querySelectorAll(MESSAGES);
    if (!bots.length) return;
    const text = bots[bots.length - 1].textContent;
    const dom = performance.timeOrigin + performance.now();
    const fresh = [];
    for (const match of text.matchAll(pattern)) {
      const index = Number(match[1]);
      if (state.seen.has(index)) continue;
      state.seen.add(index);
      const sample = {index, emitted: Number(match[2]), dom, paint: null};
      state.samples.push(sample);
      fresh.push(sample);
    }
    if (fresh.length) {
      requestAnimationFrame(() => {
        const paint = performance.timeOrigin + performance.now();
        for (const sample of fresh) sample.paint = paint;
      });
    }
  });
  observer.observe(root, {childList: true, subtree: true, characterData: true});
  state.stop = () => observer.disconnect();
}
"""
    return js.replace("ROOT", json.dumps(root_selector)).replace(
        "MESSAGES", json.dumps(message_selector)
    )

"""Section 2: many concurrent streams at 20 tokens/s each on one server.

The server (pinned to core 0) runs the simulated engine at 20 tokens/s. A
load generator process (pinned to core 1, asyncio + uvloop, raw sockets)
opens N keep-alive connections first, then starts one stream per connection,
spread evenly over ``--ramp`` seconds, and records when each ``id: N`` line
arrives. It parses nothing else: it finds ``\\nid: N\\n`` in the bytes and
stops at ``data: [DONE]``.

Lateness of token event k (k = 0, 1, …; SSE id k + 2, since id 1 is the role
chunk) = arrival - (request sent + k / rate): the engine's own schedule seen
from the client, so it includes request handling, queueing in the server's
event loop and the socket path. The orchestrator samples the server's CPU
time and RSS from /proc; memory per stream = (peak RSS - RSS before the
connections opened) / N, buffered finished streams included.

``python -m bench.many_streams --n 500,1000,2000 [--workers 2 --hub redis]``

``--side-by-side floor,ssechat`` runs, for each N, the floor (a bare ASGI app
pacing pre-built events of our answer: bench/baselines/floor.py) and ssechat
(memory hub, one worker), back to back in alternating order, each pinned to
core 0, and writes ssechat's ratios to the floor (CPU per event, p99
lateness, KB per open stream); other names run them under Granian.

``--compare`` runs, for each N, one memory-hub worker (pinned to core 0) and
two Redis-hub workers (both cores) back to back, in alternating order, and
writes both with the ratio of their CPU per event (the redis-server's own
CPU is reported apart, per event too). ``--capacity`` then looks for the
largest N each of them carries at p99 lateness < 50 ms (N grows by a quarter
until p99 breaks it, then one bisection).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from bench.support import (
    CLIENT_CPUS,
    HOST,
    RESULTS,
    Sample,
    Sampler,
    Server,
    free_port,
    percentile,
    pinned,
    start_redis,
    usage_between,
    write_json,
)

logger = logging.getLogger("bench.many_streams")

RATE = 20.0
PATH = "/v1/chat/completions"
PROMPT = "Benchmark: explain Server-Sent Events."
MAX_TOKENS = 200
_ID = re.compile(rb"\nid: (\d+)\n")
_DONE = b"data: [DONE]"


# -- load generator (runs in its own process) -----------------------------------------------


class _Stream(asyncio.Protocol):
    """One connection, one stream; records (seq, arrival) pairs."""

    def __init__(self, request: bytes, finished: asyncio.Future[None] | None = None) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.arrivals: list[tuple[int, float]] = []
        self.done = False
        self.done_at = 0.0
        self.closed = False
        self.tail = b""
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.finished: asyncio.Future[None] = finished or asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.connected.set_result(None)

    def send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buffer = self.tail + data
        last = buffer.rfind(b"\n")
        if last < 0:
            self.tail = buffer
            return
        complete = buffer[: last + 1]
        # Keep the last LF: it may begin the next "\nid: N\n".
        self.tail = buffer[last:]
        for match in _ID.finditer(complete):
            self.arrivals.append((int(match.group(1)), now))
        if _DONE in complete:
            self.done = True
            self.done_at = now
            if self.transport is not None:
                self.transport.close()
            if not self.finished.done():
                self.finished.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("closed before connected"))
        if not self.finished.done():
            self.finished.set_result(None)


def _request_bytes(port: int, seed: int) -> bytes:
    body = json.dumps(
        {
            "model": "ssechat-simulated",
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "max_tokens": MAX_TOKENS,
            "seed": seed,
        }
    ).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(port: int, n: int, ramp_s: float, seed: int, timeout_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    request = _request_bytes(port, seed)
    streams = [_Stream(request) for _ in range(n)]
    connect_started = time.perf_counter()
    gate = asyncio.Semaphore(100)  # connect in waves: the listen backlog is finite

    async def connect(stream: _Stream) -> None:
        async with gate:
            await loop.create_connection(lambda: stream, HOST, port)

    await asyncio.gather(*(connect(stream) for stream in streams))
    connect_s = time.perf_counter() - connect_started
    sys.stdout.write(f"CONNECTED {n}\n")
    sys.stdout.flush()
    await asyncio.sleep(0.3)  # let the orchestrator note the connected-but-idle RSS
    started = time.perf_counter()
    base = loop.time() + 0.05
    for index, stream in enumerate(streams):
        loop.call_at(base + ramp_s * index / n, stream.send)
    cpu_before = time.process_time()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(stream.finished for stream in streams)), timeout=timeout_s
        )
        timed_out = False
    except TimeoutError:
        timed_out = True
    wall = time.perf_counter() - started
    client_cpu = time.process_time() - cpu_before
    # perf_counter is CLOCK_MONOTONIC, shared with the orchestrator's samples:
    # between these two instants every stream was open.
    all_sent = max(stream.sent_at for stream in streams)
    first_done = min((s.done_at for s in streams if s.done_at), default=time.perf_counter())
    for stream in streams:
        if stream.transport is not None and not stream.transport.is_closing():
            stream.transport.close()
    summary = _summarise(streams, n, wall, client_cpu, connect_s, timed_out)
    summary["all_open_from"] = all_sent
    summary["all_open_until"] = first_done
    return summary


def _summarise(
    streams: list[_Stream],
    n: int,
    wall: float,
    client_cpu: float,
    connect_s: float,
    timed_out: bool,
) -> dict[str, Any]:
    lateness: list[float] = []
    first_event: list[float] = []
    gaps = 0
    events = 0
    for stream in streams:
        if not stream.arrivals:
            continue
        seqs = [seq for seq, _ in stream.arrivals]
        if seqs != list(range(1, len(seqs) + 1)):
            gaps += 1
        events += len(seqs)
        first_event.append(stream.arrivals[0][1] - stream.sent_at)
        # Token k has id k + 2 and was due at sent_at + k / RATE; the two
        # trailing events (finish chunk, [DONE]) follow the last token at once.
        tokens = len(seqs) - 3 if stream.done else len(seqs) - 1
        for seq, arrival in stream.arrivals[1 : 1 + tokens]:
            lateness.append(arrival - (stream.sent_at + (seq - 2) / RATE))
    completed = sum(1 for stream in streams if stream.done)
    return {
        "n": n,
        "completed": completed,
        "timed_out": timed_out,
        "streams_with_gaps": gaps,
        "events": events,
        "wall_s": wall,
        "connect_s": connect_s,
        "client_cpu_s": client_cpu,
        "client_cpu_percent": 100 * client_cpu / wall if wall else 0.0,
        "lateness_ms": {
            "p50": 1000 * percentile(lateness, 50),
            "p90": 1000 * percentile(lateness, 90),
            "p99": 1000 * percentile(lateness, 99),
            "max": 1000 * max(lateness, default=float("nan")),
        },
        "first_event_ms": {
            "p50": 1000 * percentile(first_event, 50),
            "p99": 1000 * percentile(first_event, 99),
        },
        # A thinned sample for the CDF plot (every event would be ~200k floats).
        "lateness_sample_ms": [
            1000 * value for value in sorted(lateness)[:: max(1, len(lateness) // 2000)]
        ],
    }


def client_main(args: argparse.Namespace) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(_client(args.port, args.n, args.ramp, args.seed, args.timeout))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


# -- orchestrator ----------------------------------------------------------------------------


def longest_seed(tries: int = 64) -> tuple[int, int]:
    """The seed whose simulated answer to PROMPT is longest (at most MAX_TOKENS)."""
    from backend.engines.base import ChatMessage, GenerationRequest
    from backend.engines.simulated import simulated_tokens

    best = (0, -1)
    for seed in range(tries):
        request = GenerationRequest(
            messages=(ChatMessage(role="user", content=PROMPT),),
            model="ssechat-simulated",
            max_tokens=MAX_TOKENS,
            seed=seed,
        )
        # the server runs with SSECHAT_SIM_FILL_MAX_TOKENS=1: answers run to max_tokens
        tokens = min(len(simulated_tokens(request, MAX_TOKENS)), MAX_TOKENS)
        if tokens > best[1]:
            best = (seed, tokens)
    return best


@dataclass
class RunResult:
    n: int
    workers: int
    hub: str
    seed: int
    tokens_per_stream: int
    client: dict[str, Any]
    server_cpu_percent: float
    server_wait_percent: float
    server_cpu_us_per_event: float
    streams_per_core: float
    rss_before_mb: float
    rss_connected_mb: float
    rss_all_open_mb: float
    rss_peak_mb: float
    kb_per_open_stream: float
    kb_per_stream_peak: float
    # The redis-server's CPU (not in the server figures above), per delivered event.
    redis_cpu_us_per_event: float = 0.0
    notes: list[str] = field(default_factory=list)
    app: str = "ssechat"
    server: str = "uvicorn"


def payload_file(seed: int) -> Path:
    """The data of our answer for ``seed`` (JSON list, ``[DONE]`` last), for the floor to
    replay: captured once from a server of ours at full speed, then kept."""
    from bench.throughput import post, sse_data

    path = RESULTS / f"many_streams-payload-{seed}-{MAX_TOKENS}.json"
    if path.exists():
        return path
    port = free_port()
    command = [sys.executable, "-m", "backend", "--engine", "simulated", "--port", str(port)]
    env = {"SSECHAT_SIM_TOKENS_PER_S": "0", "SSECHAT_SIM_FILL_MAX_TOKENS": "1"}
    with Server("streams-payload", [*command, "--log-level", "warning"], port, env=env) as server:
        body = json.loads(_request_bytes(port, seed).split(b"\r\n\r\n", 1)[1])
        _, raw = post(server.base_url + PATH, body)
    data = sse_data(raw)
    if data[-1] != "[DONE]":
        raise RuntimeError("our answer does not end with [DONE]")
    write_json(path, data)
    return path


# What serves the load: ssechat (``python -m backend``), or the floor (a bare ASGI
# app pacing pre-built events: bench/baselines/floor.py); under uvicorn, or Granian.
APPS = ("ssechat", "floor")
SERVERS = ("uvicorn", "granian")


def _command(app: str, server: str, port: int) -> list[str]:
    if server == "granian":
        target = "backend.app:app_from_environment" if app == "ssechat" else _FLOOR_FACTORY
        granian = str(Path(sys.executable).with_name("granian"))
        return [
            *(granian, "--interface", "asgi", "--factory", target),
            *("--host", HOST, "--port", str(port), "--workers", "1"),
            *("--loop", "uvloop", "--log-level", "warning", "--no-ws"),
            # Concurrent requests per worker default to the backlog (1,024): every
            # open stream is one, so lift it to uvicorn's connection cap.
            *("--backpressure", "16384"),
        ]
    if app == "floor":
        return [sys.executable, "-m", "bench.baselines.serve", "floor", "--port", str(port)]
    command = [sys.executable, "-m", "backend", "--engine", "simulated", "--port", str(port)]
    return [*command, "--log-level", "warning"]


_FLOOR_FACTORY = "bench.baselines.floor:build_app"


def run_one(
    n: int,
    *,
    seed: int,
    tokens: int,
    ramp_s: float,
    workers: int = 1,
    hub: str = "memory",
    server_cpus: str = "0",
    backend_root: Path | None = None,
    app: str = "ssechat",
    server_kind: str = "uvicorn",
    extra_env: dict[str, str] | None = None,
) -> RunResult:
    port = free_port()
    env = {"SSECHAT_SIM_TOKENS_PER_S": str(RATE), "SSECHAT_SIM_FILL_MAX_TOKENS": "1"}
    if app == "floor":
        env = {"BENCH_PAYLOAD_FILE": str(payload_file(seed)), "BENCH_RATE": str(RATE)}
    elif server_kind == "granian":  # no command line of ours: settings from the environment
        env["SSECHAT_ENGINE"] = "simulated"
        env["SSECHAT_LOG_LEVEL"] = "warning"
    env.update(extra_env or {})
    redis: subprocess.Popen[bytes] | None = None
    command = _command(app, server_kind, port)
    if workers > 1 or hub == "redis":
        redis_port = free_port()
        redis = start_redis(redis_port)
        command += ["--workers", str(workers), "--hub", hub]
        command += ["--redis-url", f"redis://{HOST}:{redis_port}/0"]
    server = Server(f"streams-{n}-{workers}", command, port, cpus=server_cpus, env=env)
    if backend_root is not None:  # a patched copy of backend/, to try a fix
        server.cwd = backend_root
        server.env["PYTHONPATH"] = str(backend_root)
    try:
        with server:
            time.sleep(0.5 if workers == 1 else 2.0)  # workers finish booting
            pids = server.pids()
            redis_sampler = Sampler([redis.pid] if redis is not None else [], interval_s=1.0)
            with Sampler(pids, interval_s=0.1) as sampler:
                rss_before = sampler.snapshot().rss
                client = subprocess.Popen(
                    pinned(
                        [
                            sys.executable,
                            "-m",
                            "bench.many_streams",
                            "client",
                            "--port",
                            str(port),
                            "--n",
                            str(n),
                            "--ramp",
                            str(ramp_s),
                            "--seed",
                            str(seed),
                            "--timeout",
                            str(ramp_s + tokens / RATE + 20),
                        ],
                        CLIENT_CPUS,
                    ),
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert client.stdout is not None
                rss_connected = 0
                redis_start = redis_sampler.snapshot()
                result: dict[str, Any] | None = None
                cpu_start: Sample | None = None
                for line in client.stdout:
                    if line.startswith("CONNECTED"):
                        time.sleep(0.2)
                        cpu_start = sampler.snapshot()
                        redis_start = redis_sampler.snapshot()
                        rss_connected = cpu_start.rss
                    elif line.startswith("RESULT "):
                        result = json.loads(line[len("RESULT ") :])
                client.wait(timeout=30)
                cpu_end = sampler.snapshot()
                redis_end = redis_sampler.snapshot()
            if result is None or cpu_start is None:
                raise RuntimeError(f"load generator failed (exit {client.returncode})")
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)
    cpu_percent, wait_percent = usage_between(cpu_start, cpu_end)
    per_event = (cpu_end.cpu_s - cpu_start.cpu_s) / max(int(result["events"]), 1)
    redis_per_event = (redis_end.cpu_s - redis_start.cpu_s) / max(int(result["events"]), 1)
    peak = sampler.peak_rss
    # RSS while all N streams were open (none finished yet): the cost of an open
    # stream, before finished streams pile up in the hub for its resume TTL.
    open_window = [
        sample.rss
        for sample in sampler.samples
        if result["all_open_from"] <= sample.at <= result["all_open_until"]
    ]
    all_open = max(open_window, default=0)
    notes = []
    if result["client_cpu_percent"] > 80:
        notes.append("load generator above 80% CPU: lateness may include client delay")
    if result["completed"] < n:
        notes.append(f"only {result['completed']} of {n} streams completed")
    notes.extend(_log_complaints(server.log_file))
    return RunResult(
        n=n,
        workers=workers,
        hub=hub,
        seed=seed,
        tokens_per_stream=tokens,
        client=result,
        server_cpu_percent=cpu_percent,
        server_wait_percent=wait_percent,
        server_cpu_us_per_event=per_event * 1e6,
        # What one fully available core would sustain at RATE tokens/s per stream,
        # from CPU spent per delivered event (request handling included): a
        # figure the neighbours on a shared machine barely move.
        streams_per_core=1 / (per_event * RATE) if per_event else 0.0,
        rss_before_mb=rss_before / 2**20,
        rss_connected_mb=rss_connected / 2**20,
        rss_all_open_mb=all_open / 2**20,
        rss_peak_mb=peak / 2**20,
        kb_per_open_stream=(all_open - rss_before) / 1024 / n if all_open else float("nan"),
        kb_per_stream_peak=(peak - rss_before) / 1024 / n,
        redis_cpu_us_per_event=redis_per_event * 1e6,
        notes=notes,
        app=app,
        server=server_kind,
    )


def _log_complaints(path: Path, top: int = 2) -> list[str]:
    """The server's most frequent warnings/errors (ids and numbers blurred), with counts."""
    counts: collections.Counter[str] = collections.Counter()
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        match = re.search(r"\b(WARNING|ERROR|CRITICAL)\b (.*)", line)
        if match:
            message = re.sub(r"chatcmpl-[0-9a-f]+|\d+", "#", match.group(2))
            counts[message[:160]] += 1
    return [f"server log, {count}x: {message}" for message, count in counts.most_common(top)]


def run(
    ns: list[int],
    *,
    ramp_s: float,
    workers: int = 1,
    hub: str = "memory",
    backend_root: Path | None = None,
) -> dict[str, Any]:
    seed, tokens = longest_seed()
    runs = []
    for n in ns:
        result = run_one(
            n,
            seed=seed,
            tokens=tokens,
            ramp_s=ramp_s,
            workers=workers,
            hub=hub,
            server_cpus="0" if workers == 1 else "0,1",
            backend_root=backend_root,
        )
        late = result.client["lateness_ms"]
        logger.info(
            "N=%d workers=%d hub=%s: lateness p50 %.1f ms p99 %.1f ms, server cpu %.0f%%, "
            "run-queue wait %.0f%%, %.0f us cpu/event (%.0f streams/core), %.1f KB/open stream "
            "(%.1f at peak), client cpu %.0f%%, completed %d",
            n,
            workers,
            hub,
            late["p50"],
            late["p99"],
            result.server_cpu_percent,
            result.server_wait_percent,
            result.server_cpu_us_per_event,
            result.streams_per_core,
            result.kb_per_open_stream,
            result.kb_per_stream_peak,
            result.client["client_cpu_percent"],
            result.client["completed"],
        )
        runs.append(asdict(result))
    return {"rate": RATE, "ramp_s": ramp_s, "runs": runs, "finished_at": time.time()}


# The configurations --compare puts side by side: (workers, hub, server cores). One
# Redis worker on core 0 is the hub's own cost next to the memory hub's, under the
# same conditions; two Redis workers are the scale-out (on a machine with two cores
# they share them with the load generator and the redis-server).
CONFIGS = [(1, "memory", "0"), (1, "redis", "0"), (2, "redis", "0,1")]
CAPACITY_CONFIGS = [CONFIGS[0], CONFIGS[2]]
GOAL_P99_MS = 50.0


def _run_config(
    n: int, workers: int, hub: str, cpus: str, *, seed: int, tokens: int, ramp_s: float
) -> dict[str, Any]:
    result = run_one(
        n, seed=seed, tokens=tokens, ramp_s=ramp_s, workers=workers, hub=hub, server_cpus=cpus
    )
    late = result.client["lateness_ms"]
    logger.info(
        "N=%d %d %s: p50 %.1f ms p99 %.1f ms, %.0f us cpu/event (+%.0f redis-server), "
        "%.1f KB/open stream, run-queue wait %.0f%%, completed %d",
        n,
        workers,
        hub,
        late["p50"],
        late["p99"],
        result.server_cpu_us_per_event,
        result.redis_cpu_us_per_event,
        result.kb_per_open_stream,
        result.server_wait_percent,
        result.client["completed"],
    )
    return asdict(result)


def compare(ns: list[int], *, ramp_s: float, repeat: int = 1) -> dict[str, Any]:
    """Every configuration in ``CONFIGS`` for each N, back to back (order rotating)."""
    seed, tokens = longest_seed()
    rows = []
    for round_index in range(repeat):
        for index, n in enumerate(ns):
            shift = (index + round_index) % len(CONFIGS)
            runs = {
                f"{workers}-{hub}": _run_config(
                    n, workers, hub, cpus, seed=seed, tokens=tokens, ramp_s=ramp_s
                )
                for workers, hub, cpus in CONFIGS[shift:] + CONFIGS[:shift]
            }
            base = runs["1-memory"]["server_cpu_us_per_event"]
            ratios = {
                name: run["server_cpu_us_per_event"] / base
                for name, run in runs.items()
                if name != "1-memory"
            }
            rows.append({"n": n, "round": round_index, "runs": runs, "cpu_ratio": ratios})
            logger.info("N=%d: CPU per event against the memory hub: %s", n, ratios)
    return {"rate": RATE, "ramp_s": ramp_s, "rows": rows, "finished_at": time.time()}


# What --side-by-side can name: (app, server, extra environment), one worker on core 0.
SIDE_BY_SIDE: dict[str, tuple[str, str, dict[str, str]]] = {
    "floor": ("floor", "uvicorn", {}),
    "floor-relay": ("floor", "uvicorn", {"BENCH_FLOOR_TASKS": "2"}),
    "ssechat": ("ssechat", "uvicorn", {}),
    "floor-granian": ("floor", "granian", {}),
    "ssechat-granian": ("ssechat", "granian", {}),
    # ssechat from --backend-root (e.g. an export of an earlier commit): before/after.
    "ssechat-before": ("ssechat", "uvicorn", {}),
    **{
        f"ssechat-flush{ms}": ("ssechat", "uvicorn", {"SSECHAT_FLUSH_WINDOW_MS": str(ms)})
        for ms in (20, 50, 100)
    },
}


def side_by_side(
    names: list[str],
    ns: list[int],
    *,
    ramp_s: float,
    repeat: int = 1,
    backend_root: Path | None = None,
) -> dict[str, Any]:
    """The named configurations for each N, back to back (order rotating), with each one's
    ratio to the first named: CPU per event, p99 lateness, KB per open stream."""
    seed, tokens = longest_seed()
    rows = []
    for round_index in range(repeat):
        for index, n in enumerate(ns):
            shift = (index + round_index) % len(names)
            runs: dict[str, dict[str, Any]] = {}
            for name in names[shift:] + names[:shift]:
                app, server_kind, extra_env = SIDE_BY_SIDE[name]
                result = run_one(
                    n,
                    seed=seed,
                    tokens=tokens,
                    ramp_s=ramp_s,
                    app=app,
                    server_kind=server_kind,
                    extra_env=extra_env,
                    backend_root=backend_root if name == "ssechat-before" else None,
                )
                late = result.client["lateness_ms"]
                logger.info(
                    "N=%d %s: p50 %.1f ms p99 %.1f ms, %.1f us cpu/event, %.1f KB/open stream, "
                    "run-queue wait %.0f%%, completed %d",
                    n,
                    name,
                    late["p50"],
                    late["p99"],
                    result.server_cpu_us_per_event,
                    result.kb_per_open_stream,
                    result.server_wait_percent,
                    result.client["completed"],
                )
                runs[name] = asdict(result)
            base = runs[names[0]]
            ratios = {
                name: {
                    "cpu_per_event": run["server_cpu_us_per_event"]
                    / base["server_cpu_us_per_event"],
                    "p99": run["client"]["lateness_ms"]["p99"]
                    / base["client"]["lateness_ms"]["p99"],
                    "kb_per_open_stream": run["kb_per_open_stream"] / base["kb_per_open_stream"],
                }
                for name, run in runs.items()
                if name != names[0]
            }
            rows.append({"n": n, "round": round_index, "runs": runs, "ratio": ratios})
            logger.info("N=%d: against %s: %s", n, names[0], ratios)
    return {"rate": RATE, "ramp_s": ramp_s, "rows": rows, "finished_at": time.time()}


def _carries(
    n: int, config: tuple[int, str, str], tried: list[dict[str, Any]], **options: Any
) -> bool:
    workers, hub, cpus = config
    run = _run_config(n, workers, hub, cpus, **options)
    tried.append(run)
    carried = run["client"]["completed"] == n
    return carried and float(run["client"]["lateness_ms"]["p99"]) < GOAL_P99_MS


def capacity(start: int, *, ramp_s: float) -> dict[str, Any]:
    """The largest N each configuration carries at p99 lateness < GOAL_P99_MS."""
    seed, tokens = longest_seed()
    options = {"seed": seed, "tokens": tokens, "ramp_s": ramp_s}
    found: dict[str, Any] = {}
    for config in CAPACITY_CONFIGS:
        tried: list[dict[str, Any]] = []
        good, bad = 0, start
        while _carries(bad, config, tried, **options):
            good, bad = bad, bad * 5 // 4
        while bad - good > max(25, good // 10):
            middle = (good + bad) // 2
            if _carries(middle, config, tried, **options):
                good = middle
            else:
                bad = middle
        found[f"{config[0]}-{config[1]}"] = {"streams": good, "runs": tried}
        logger.info("%s carries %d streams at p99 < %.0f ms", config[:2], good, GOAL_P99_MS)
    memory, redis = found["1-memory"]["streams"], found["2-redis"]["streams"]
    found["ratio"] = redis / memory if memory else float("nan")
    return {"rate": RATE, "ramp_s": ramp_s, "capacity": found, "finished_at": time.time()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    client = sub.add_parser("client", help="the load generator (started by the orchestrator)")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--n", type=int, required=True)
    client.add_argument("--ramp", type=float, required=True)
    client.add_argument("--seed", type=int, required=True)
    client.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--n", default="500,1000,2000", help="comma-separated stream counts")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which streams start")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--hub", choices=["memory", "redis"], default="memory")
    parser.add_argument("--backend-root", type=Path, help="run ours from a patched copy")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="memory hub (1 worker) and Redis hub (2 workers) side by side for each N",
    )
    parser.add_argument("--repeat", type=int, default=1, help="--compare: rounds over the Ns")
    parser.add_argument(
        "--capacity",
        type=int,
        metavar="N",
        help="find the streams each carries at p99 < 50 ms, starting from N",
    )
    parser.add_argument(
        "--side-by-side",
        metavar="NAMES",
        help="comma-separated configurations run back to back for each N, ratios to the "
        f"first: {', '.join(SIDE_BY_SIDE)} (e.g. floor,ssechat)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "client":
        client_main(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    ns = [int(item) for item in args.n.split(",") if item]
    if args.capacity:
        write_json(
            args.out or RESULTS / "many_streams-capacity.json",
            capacity(args.capacity, ramp_s=args.ramp),
        )
        return
    if args.side_by_side:
        names = [name for name in args.side_by_side.split(",") if name]
        unknown = [name for name in names if name not in SIDE_BY_SIDE]
        if unknown or len(names) < 2:
            parser.error(f"--side-by-side: two or more of {', '.join(SIDE_BY_SIDE)}")
        if "ssechat-before" in names and args.backend_root is None:
            parser.error("--side-by-side ssechat-before: name the tree with --backend-root")
        root = args.backend_root.resolve() if args.backend_root else None
        result = side_by_side(names, ns, ramp_s=args.ramp, repeat=args.repeat, backend_root=root)
        write_json(args.out or RESULTS / f"many_streams-{'-vs-'.join(names)}.json", result)
        return
    if args.compare:
        result = compare(ns, ramp_s=args.ramp, repeat=args.repeat)
        write_json(args.out or RESULTS / "many_streams-compare.json", result)
        return
    root = args.backend_root.resolve() if args.backend_root else None
    result = run(ns, ramp_s=args.ramp, workers=args.workers, hub=args.hub, backend_root=root)
    out = args.out or RESULTS / f"many_streams-w{args.workers}-{args.hub}.json"
    write_json(out, result)


if __name__ == "__main__":
    main()

"""Cancel latency: explicit cancel → engine stopped (goal: < 100 ms), both hubs.

Two measurements per hub, each over ``--trials`` streams:

1. In process, exact: the engine is the simulated one wrapped in a stopwatch
   that notes when its token stream is closed (the moment the engine stops).
   Clock starts just before ``hub.cancel()``. For Redis the generation runs
   on hub A and the cancel comes from hub B: two hubs with their own
   connections, sharing only a real redis-server, as two workers would.
2. Over HTTP, end to end: ``python -m backend`` processes; a client reads the
   stream and POSTs ``/cancel``; clock stops when the final chunk
   (``finish_reason: "cancelled"``) reaches the reader. The hub appends that
   chunk only after the engine has stopped, so this bounds "engine stopped"
   from above. Memory: one process. Redis: the stream runs on process A, the
   cancel goes to process B.

Streams run at 50 tokens/s, so a cancel finds the engine parked between two
tokens, as a real engine mostly is; each cancel comes after a random
50 to 150 ms so it hits a random phase. The first trial of each
measurement warms up (connections, first request) and is not counted.

``python -m bench.cancel_latency [--trials 30]`` prints a markdown table and
writes bench/results/cancel_latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from backend.config import Settings
from backend.engines.base import ChatMessage, GenerationRequest, TokenDelta, refuse_unsupported
from backend.engines.simulated import SimulatedEngine
from backend.generation.chat import ChatCompletionGeneration
from backend.hub.base import EndReason, StreamHub
from backend.hub.memory import MemoryHub
from backend.hub.redis import RedisHub
from bench.support import (
    RESULTS,
    Server,
    backend_command,
    free_port,
    machine,
    percentile,
    versions,
    write_json,
)

logger = logging.getLogger("bench.cancel_latency")

TOKENS_PER_S = 50.0
MAX_TOKENS = 4096
GOAL_MS = 100.0
# The first trial of each measurement pays one-time costs (connections, first
# request through the app); it runs, but is not counted.
WARMUP = 1
CHAT = "/v1/chat/completions"


@dataclass
class Result:
    hub: str
    path: str
    trials: int
    p50_ms: float
    p95_ms: float
    max_ms: float
    mean_ms: float

    @classmethod
    def of(cls, hub: str, path: str, seconds: list[float]) -> Result:
        ms = [value * 1000 for value in seconds[WARMUP:]]
        return cls(
            hub=hub,
            path=path,
            trials=len(ms),
            p50_ms=percentile(ms, 50),
            p95_ms=percentile(ms, 95),
            max_ms=max(ms),
            mean_ms=statistics.fmean(ms),
        )


# -- in process ----------------------------------------------------------------------------------


class StopwatchEngine:
    """The simulated engine, noting when its token stream is closed."""

    name = "simulated"

    def __init__(self) -> None:
        self._inner = SimulatedEngine(tokens_per_s=TOKENS_PER_S)
        self.stopped_at: float | None = None
        self.stopped = asyncio.Event()

    @property
    def models(self) -> tuple[str, ...]:
        return self._inner.models

    def check(self, request: GenerationRequest) -> None:
        refuse_unsupported(request, self.name, frozenset())

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        try:
            async for delta in self._inner.stream(request):
                yield delta
        finally:
            self.stopped_at = time.perf_counter()
            self.stopped.set()

    async def aclose(self) -> None:
        return None


def _generation(stream_id: str, engine: StopwatchEngine, seed: int) -> ChatCompletionGeneration:
    request = GenerationRequest(
        messages=(ChatMessage("user", "Tell me a long story."),),
        model="ssechat-simulated",
        max_tokens=MAX_TOKENS,
        seed=seed,
    )
    return ChatCompletionGeneration(
        deltas=engine.stream(request),
        model=request.model,
        completion_id=stream_id,
        include_usage=False,
    )


async def _in_process_trials(
    owner: StreamHub, canceller: StreamHub, trials: int, rng: random.Random
) -> list[float]:
    latencies = []
    for trial in range(trials):
        stream_id = f"bench-{trial}-{rng.getrandbits(32):08x}"
        engine = StopwatchEngine()
        await owner.start(stream_id, None, _generation(stream_id, engine, trial))
        subscription = await owner.subscribe(stream_id, 0, None)
        batches = aiter(subscription)
        while not await anext(batches):
            pass  # until the first event: generating
        await asyncio.sleep(rng.uniform(0.05, 0.15))
        started = time.perf_counter()
        await canceller.cancel(stream_id, None)
        async with asyncio.timeout(5):
            await engine.stopped.wait()
        assert engine.stopped_at is not None
        latencies.append(engine.stopped_at - started)
        await subscription.aclose()
    return latencies


def _hub_settings(**extra: Any) -> dict[str, Any]:
    return {
        "keepalive_s": 15.0,
        "stream_ttl_s": 60.0,
        "resume_grace_s": 15.0,
        "max_streams": 10_000,
        "max_buffered_bytes": 256 * 1024 * 1024,
        **extra,
    }


def _ignore_end(_reason: EndReason) -> None:
    return None


async def in_process_memory(trials: int) -> list[float]:
    hub = MemoryHub(on_end=_ignore_end, **_hub_settings())
    try:
        return await _in_process_trials(hub, hub, trials, random.Random(1))
    finally:
        await hub.aclose()


async def in_process_redis(redis_url: str, trials: int) -> list[float]:
    settings = Settings(hub="redis", redis_url=redis_url)
    owner = await RedisHub.connect(settings, on_end=_ignore_end)
    canceller = await RedisHub.connect(settings, on_end=_ignore_end)
    try:
        return await _in_process_trials(owner, canceller, trials, random.Random(2))
    finally:
        await canceller.aclose()
        await owner.aclose()


# -- over HTTP -----------------------------------------------------------------------------------


async def _http_trials(reader_url: str, cancel_url: str, trials: int) -> list[float]:
    rng = random.Random(3)
    latencies = []
    timeout = httpx.Timeout(30.0)
    async with (
        httpx.AsyncClient(timeout=timeout) as reader,
        httpx.AsyncClient(timeout=timeout) as canceller,
    ):
        for trial in range(trials):
            body = {
                "messages": [{"role": "user", "content": "Tell me a long story."}],
                "stream": True,
                "seed": trial,
                "max_tokens": MAX_TOKENS,
            }
            async with reader.stream("POST", f"{reader_url}{CHAT}", json=body) as response:
                stream_id = response.headers["x-stream-id"]
                lines = response.aiter_lines()
                async for line in lines:
                    if line.startswith("data: "):
                        break  # generating
                await asyncio.sleep(rng.uniform(0.05, 0.15))
                started = time.perf_counter()
                cancel = asyncio.create_task(
                    canceller.post(f"{cancel_url}{CHAT}/{stream_id}/cancel")
                )
                async for line in lines:
                    if line.startswith("data: {") and '"finish_reason":"cancelled"' in line:
                        latencies.append(time.perf_counter() - started)
                        break
                else:
                    raise RuntimeError(f"stream {stream_id} ended without a cancelled chunk")
                answer = await cancel
                answer.raise_for_status()
    return latencies


def _backend(name: str, env: dict[str, str]) -> Server:
    port = free_port()
    command = backend_command(port)
    return Server(
        name=f"cancel-{name}",
        command=command,
        port=port,
        env={
            "SSECHAT_ENGINE": "simulated",
            "SSECHAT_SIM_TOKENS_PER_S": str(TOKENS_PER_S),
            **env,
        },
    )


async def http_memory(trials: int) -> list[float]:
    with _backend("memory", {"SSECHAT_HUB": "memory"}) as server:
        return await _http_trials(server.base_url, server.base_url, trials)


async def http_redis(redis_url: str, trials: int) -> list[float]:
    env = {"SSECHAT_HUB": "redis", "SSECHAT_REDIS_URL": redis_url}
    with _backend("redis-a", env) as worker_a, _backend("redis-b", env) as worker_b:
        return await _http_trials(worker_a.base_url, worker_b.base_url, trials)


# -- Redis ---------------------------------------------------------------------------------------


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on a free port (nothing on disk); yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as directory:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", directory]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while not _answers_ping(port):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(10)


# -- report --------------------------------------------------------------------------------------


def markdown(results: list[Result]) -> str:
    lines = [
        f"Explicit cancel → engine stopped (goal < {GOAL_MS:.0f} ms); "
        f"simulated engine at {TOKENS_PER_S:.0f} tokens/s.",
        "",
        "| hub | measured | trials | p50 ms | p95 ms | max ms | goal met |",
        "|---|---|---:|---:|---:|---:|:---:|",
    ]
    for result in results:
        met = "yes" if result.max_ms < GOAL_MS else "no"
        lines.append(
            f"| {result.hub} | {result.path} | {result.trials} | {result.p50_ms:.2f} | "
            f"{result.p95_ms:.2f} | {result.max_ms:.2f} | {met} |"
        )
    return "\n".join(lines)


async def run(trials: int) -> list[Result]:
    results: list[Result] = []
    with redis_server() as url:
        steps: list[tuple[str, str, Callable[[], Awaitable[list[float]]]]] = [
            (
                "memory",
                "in process: `cancel()` → engine stopped",
                lambda: in_process_memory(WARMUP + trials),
            ),
            (
                "redis",
                "in process, worker B cancels, A runs it: `cancel()` → engine stopped",
                lambda: in_process_redis(url, WARMUP + trials),
            ),
            (
                "memory",
                "HTTP, 1 process: POST /cancel → final chunk at the reader",
                lambda: http_memory(WARMUP + trials),
            ),
            (
                "redis",
                "HTTP, 2 processes: POST /cancel on B → final chunk at the reader on A",
                lambda: http_redis(url, WARMUP + trials),
            ),
        ]
        for hub, path, measure in steps:
            logger.info("%s: %s", hub, path)
            results.append(Result.of(hub, path, await measure()))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results = asyncio.run(run(args.trials))
    write_json(
        RESULTS / "cancel_latency.json",
        {
            "results": [asdict(result) for result in results],
            "tokens_per_s": TOKENS_PER_S,
            "goal_ms": GOAL_MS,
            "machine": machine(),
            "versions": versions(),
        },
    )
    sys.stdout.write(markdown(results) + "\n")
    return 0 if all(result.max_ms < GOAL_MS for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())

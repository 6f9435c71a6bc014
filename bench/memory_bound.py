"""The byte bound while streams grow (issue 11, goal 5).

``python -m backend`` with ``SSECHAT_MAX_BUFFERED_BYTES`` = 1 MiB, the
simulated engine at full speed filling ``max_tokens`` (4096), and S long
streams started at once, each read to its end by its own client. A sampler
reads the hub's byte total every 20 ms (memory hub: the
``ssechat_hub_buffered_bytes`` gauge; Redis hub: ``GET ssechat:bytes``, the
store's own count) and reports the peak against the bound, how many streams
ran to their end and how many were ended by the bound (an error event naming
``SSECHAT_MAX_BUFFERED_BYTES``, then ``[DONE]``), and the server's RSS.

It also prints what one 200-token Chat Completions stream (203 events) takes
in the hub's compact ``EventLog`` (buffers, tags, offsets, names, template)
against the same events kept as whole payload strings in a list of
``(name, payload)`` tuples, as the hub kept them before.

``python -m bench.memory_bound --streams 30,120 [--hub redis --workers 2]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.support import (
    HOST,
    RESULTS,
    Sampler,
    Server,
    backend_command,
    free_port,
    start_redis,
    write_json,
)

logger = logging.getLogger("bench.memory_bound")

BOUND = 1_048_576
MAX_TOKENS = 4096
_GAUGE = re.compile(r"^ssechat_hub_buffered_bytes (\S+)$", re.MULTILINE)


async def _read(client: httpx.AsyncClient, seed: int) -> dict[str, Any]:
    body = {
        "model": "ssechat-simulated",
        "messages": [{"role": "user", "content": "A long answer, please."}],
        "stream": True,
        "max_tokens": MAX_TOKENS,
        "seed": seed,
    }
    events = 0
    ended_by_bound = False
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        if response.status_code != 200:
            return {"status": response.status_code, "events": 0, "bound": False}
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events += 1
                if "SSECHAT_MAX_BUFFERED_BYTES" in line:
                    ended_by_bound = True
    return {"status": 200, "events": events, "bound": ended_by_bound}


def _sample_bytes(url: str, redis_url: str | None, stop: threading.Event, out: list[int]) -> None:
    if redis_url is not None:
        from redis import Redis

        with Redis.from_url(redis_url) as admin:
            while not stop.is_set():
                out.append(int(admin.get("ssechat:bytes") or 0))
                stop.wait(0.02)
        return
    with httpx.Client(base_url=url, timeout=5) as client:
        while not stop.is_set():
            match = _GAUGE.search(client.get("/metrics").text)
            out.append(int(float(match.group(1))) if match else 0)
            stop.wait(0.02)


def run_one(streams: int, *, hub: str, workers: int) -> dict[str, Any]:
    port = free_port()
    env = {
        "SSECHAT_SIM_TOKENS_PER_S": "0",
        "SSECHAT_SIM_FILL_MAX_TOKENS": "1",
        "SSECHAT_MAX_BUFFERED_BYTES": str(BOUND),
    }
    command = backend_command(port, "--engine", "simulated")
    redis: subprocess.Popen[bytes] | None = None
    redis_url: str | None = None
    if hub == "redis":
        redis_port = free_port()
        redis = start_redis(redis_port)
        redis_url = f"redis://{HOST}:{redis_port}/0"
        command += ["--workers", str(workers), "--hub", "redis", "--redis-url", redis_url]
    server = Server(f"bound-{streams}-{hub}", command, port, cpus=None, env=env)
    samples: list[int] = []
    try:
        with server:
            time.sleep(0.5 if workers == 1 else 2.0)
            stop = threading.Event()
            sampler_thread = threading.Thread(
                target=_sample_bytes, args=(server.base_url, redis_url, stop, samples)
            )
            with Sampler(server.pids(), interval_s=0.05) as rss:
                rss_before = rss.snapshot().rss
                sampler_thread.start()
                started = time.perf_counter()

                async def all_streams() -> list[dict[str, Any]]:
                    limits = httpx.Limits(max_connections=streams + 10)
                    async with httpx.AsyncClient(
                        base_url=server.base_url, timeout=120, limits=limits
                    ) as client:
                        return await asyncio.gather(
                            *(_read(client, seed) for seed in range(streams))
                        )

                results = asyncio.run(all_streams())
                wall = time.perf_counter() - started
                stop.set()
                sampler_thread.join()
    finally:
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)
    peak = max(samples, default=0)
    return {
        "streams": streams,
        "hub": hub,
        "workers": workers,
        "bound": BOUND,
        "peak_bytes": peak,
        "peak_over_bound": peak / BOUND,
        "ran_to_end": sum(1 for r in results if r["status"] == 200 and not r["bound"]),
        "ended_by_bound": sum(1 for r in results if r["bound"]),
        "refused": sum(1 for r in results if r["status"] != 200),
        "events": sum(r["events"] for r in results),
        "wall_s": wall,
        "rss_before_mb": rss_before / 2**20,
        "rss_peak_mb": rss.peak_rss / 2**20,
    }


def log_sizes() -> dict[str, int]:
    """Bytes one 200-token chat stream takes: compact log against whole payloads."""
    from backend.engines.base import ChatMessage, GenerationRequest
    from backend.engines.simulated import SimulatedEngine
    from backend.generation.chat import ChatCompletionGeneration
    from backend.hub.base import expand
    from backend.hub.log import EventLog

    async def produce() -> tuple[int, int, int]:
        request = GenerationRequest(
            messages=(ChatMessage("user", "A long answer, please."),),
            model="ssechat-simulated",
            max_tokens=200,
            seed=3,
        )
        engine = SimulatedEngine(tokens_per_s=0, fill_max_tokens=True)
        generation = ChatCompletionGeneration(
            deltas=engine.stream(request),
            model=request.model,
            completion_id="chatcmpl-" + "0" * 32,
            include_usage=False,
        )
        log = EventLog(generation.templates)
        whole = []
        async for item in generation.events():
            log.append(item)
            whole.append(expand(generation.templates, item))
        log.freeze()
        compact = sum(
            sys.getsizeof(part)
            for part in (log, log._data, log._tags, log._ends, log.names, log._name_index)
        )
        compact += sum(sys.getsizeof(text) for template in log.templates for text in template)
        compact += sys.getsizeof(log.templates) + sum(sys.getsizeof(t) for t in log.templates)
        whole_bytes = sys.getsizeof(whole) + sum(
            sys.getsizeof(event) + sys.getsizeof(event[1]) for event in whole
        )
        return len(log), compact, whole_bytes

    events, compact, whole_bytes = asyncio.run(produce())
    return {"events": events, "compact_bytes": compact, "whole_payload_bytes": whole_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", default="30,120")
    parser.add_argument("--hub", choices=["memory", "redis"], default="memory")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    sizes = log_sizes()
    logger.info("one stream's events: %s", json.dumps(sizes))
    runs = []
    for streams in (int(item) for item in args.streams.split(",") if item):
        result = run_one(streams, hub=args.hub, workers=args.workers)
        logger.info("%s", json.dumps(result))
        runs.append(result)
    out = Path(args.out) if args.out else RESULTS / f"memory_bound-{args.hub}.json"
    write_json(out, {"log_sizes": sizes, "runs": runs, "finished_at": time.time()})


if __name__ == "__main__":
    main()

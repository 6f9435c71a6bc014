"""Reliability against hostile or vanishing clients, against ``python -m backend``.

1. Header bombs: the server's RSS before and after one 64 MiB header and
   four parallel 16 MiB headers (keys on, so a route would answer 401), and
   how long each takes to get its 431.
2. Slowloris: ``--connections`` connections, half silent, half trickling one
   header byte every 2 s; how many the server drops, how soon after they
   opened (the header timeout, default 10 s), and ``/healthz`` latency while
   they are open.
3. Disconnect storms: ``--storm`` streams on the memory hub (one worker) and
   ``--storm-redis`` on the Redis hub (two workers, if redis-server is
   installed) are opened, each read to its first event, held (RSS), then
   all dropped at once; how long until every response has ended and every
   generation has stopped (``/metrics``: ``ssechat_streams_active``,
   ``ssechat_hub_live_streams``; target: the resume grace period + 1 s), and
   whether tasks and memory come back down.

``python -m bench.reliability [--connections 800] [--storm 1000] [--storm-redis 300]``
prints markdown tables and writes bench/results/reliability.json. About a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import select
import shutil
import socket
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from backend.metrics.shared import PUBLISH_S
from bench.support import (
    HOST,
    RESULTS,
    Server,
    backend_command,
    cpu_seconds,
    free_port,
    http_get,
    metric,
    rss_bytes,
    start_redis,
    write_json,
)

KEY = "sk-reliability-bench"
PARTIAL = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
TRICKLE_S = 2.0
STORM_GRACE_S = 1.0
STORM_BODY = json.dumps(
    {"messages": [{"role": "user", "content": "storm"}], "stream": True, "max_tokens": 1000}
).encode()


def _bomb(port: int, size: int) -> tuple[float, bytes]:
    started = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=30) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Bomb: ")
        block = b"a" * (1 << 20)
        sent = 0
        while sent < size and not select.select([sock], [], [], 0)[0]:
            try:
                sent += sock.send(block)
            except OSError:
                break
        answer = sock.recv(200)
    return time.perf_counter() - started, answer[:12]


def header_bombs(server: Server) -> dict[str, Any]:
    before = rss_bytes(server.pid)
    first, status = _bomb(server.port, 64 << 20)
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda _: _bomb(server.port, 16 << 20), range(4)))
    after = rss_bytes(server.pid)
    statuses = {status.decode(), *(answer.decode() for _, answer in parallel)}
    return {
        "rss_before_mb": before / 1e6,
        "rss_after_mb": after / 1e6,
        "statuses": sorted(statuses),
        "answer_64mib_ms": first * 1000,
        "answer_16mib_max_ms": max(elapsed for elapsed, _ in parallel) * 1000,
    }


def slowloris(server: Server, connections: int) -> dict[str, Any]:
    silent = [socket.create_connection((HOST, server.port)) for _ in range(connections // 2)]
    trickling = [socket.create_connection((HOST, server.port)) for _ in range(connections // 2)]
    opened = time.monotonic()
    closed: dict[socket.socket, float] = {}
    health_ms: list[float] = []
    position = 0
    next_byte = opened
    everyone = silent + trickling
    for sock in everyone:
        sock.setblocking(False)
    while len(closed) < len(everyone) and time.monotonic() - opened < 60:
        now = time.monotonic()
        if now >= next_byte:
            piece = PARTIAL[position % len(PARTIAL) : position % len(PARTIAL) + 1]
            for sock in trickling:
                if sock not in closed:
                    try:
                        sock.send(piece)
                    except OSError:
                        closed[sock] = now - opened
            position += 1
            next_byte = now + TRICKLE_S
            started = time.perf_counter()
            status, _ = http_get(server.base_url + "/healthz", timeout=5)
            if status == 200:
                health_ms.append((time.perf_counter() - started) * 1000)
        waiting = [sock for sock in everyone if sock not in closed]
        readable, _, _ = select.select(waiting, [], [], 0.2)
        for sock in readable:
            try:
                while sock.recv(65536):
                    pass
            except BlockingIOError:
                continue
            except OSError:
                pass
            closed[sock] = time.monotonic() - opened
    for sock in everyone:
        sock.close()
    times = sorted(closed.values())
    return {
        "connections": len(everyone),
        "dropped": len(times),
        "dropped_after_s_median": statistics.median(times) if times else None,
        "dropped_after_s_max": times[-1] if times else None,
        "healthz_ms_median": statistics.median(health_ms) if health_ms else None,
        "healthz_answered": len(health_ms),
    }


async def _open_stream(port: int) -> asyncio.StreamWriter:
    """A streaming request read to its first event; the connection left open."""
    reader, writer = await asyncio.open_connection(HOST, port)
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(STORM_BODY)}\r\n\r\n"
    )
    writer.write(head.encode() + STORM_BODY)
    received = await reader.readuntil(b"\r\n\r\n")
    if not received.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"stream refused: {received[:100]!r}")
    while b"\n\n" not in received.partition(b"\r\n\r\n")[2]:
        received += await reader.read(65536)
    return writer


async def _storm(server: Server, count: int, workers: int) -> dict[str, Any]:
    url = server.base_url

    async def gauge(name: str) -> float:
        return await asyncio.to_thread(metric, url, name)

    async def until(name: str, reached: Callable[[float], bool]) -> None:
        for _ in range(600):
            if reached(await gauge(name)):
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{name} never got there")

    await until("ssechat_workers", lambda value: value >= workers)
    # A few streams first: what stays up afterwards (the hub's ticker, pools) is not a leak.
    for writer in await asyncio.gather(*(_open_stream(server.port) for _ in range(workers * 4))):
        writer.transport.abort()
    await until("ssechat_hub_live_streams", lambda value: value == 0)
    await asyncio.sleep(PUBLISH_S + 1.0)
    pids = server.pids()
    rss_idle = sum(rss_bytes(pid) for pid in pids)
    tasks_idle = await gauge("ssechat_asyncio_tasks")
    gate = asyncio.Semaphore(100)

    async def one() -> asyncio.StreamWriter:
        async with gate:
            return await _open_stream(server.port)

    started = time.perf_counter()
    writers = await asyncio.gather(*(one() for _ in range(count)))
    open_s = time.perf_counter() - started
    # Another worker's published figures may lag by PUBLISH_S.
    await until("ssechat_hub_live_streams", lambda value: value >= count)
    held = await gauge("ssechat_streams_active")
    rss_held = sum(rss_bytes(pid) for pid in pids)
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    dropped = time.perf_counter()
    for writer in writers:
        writer.transport.abort()
    responses_ended_s = generations_stopped_s = None
    while generations_stopped_s is None and time.perf_counter() - dropped < 60:
        now = time.perf_counter() - dropped
        if responses_ended_s is None and await gauge("ssechat_streams_active") == 0:
            responses_ended_s = now
        if responses_ended_s is not None and await gauge("ssechat_hub_live_streams") == 0:
            generations_stopped_s = now
        await asyncio.sleep(0.02)
    cpu_s = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    await asyncio.sleep(2.0)  # what ends after the generations (timers, tasks) has ended
    return {
        "streams": count,
        "workers": workers,
        "open_s": open_s,
        "connections_held": held,
        "rss_idle_mb": rss_idle / 1e6,
        "rss_held_mb": rss_held / 1e6,
        "kb_per_held_stream": (rss_held - rss_idle) / count / 1e3,
        "rss_after_mb": sum(rss_bytes(pid) for pid in pids) / 1e6,
        "responses_ended_s": responses_ended_s,
        "generations_stopped_s": generations_stopped_s,
        "grace_s": STORM_GRACE_S,
        "metrics_lag_s": PUBLISH_S if workers > 1 else 0.0,
        "cpu_s_to_free": cpu_s,
        "tasks_idle": tasks_idle,
        "tasks_after": await gauge("ssechat_asyncio_tasks"),
    }


def disconnect_storm(count: int, *, workers: int = 1) -> dict[str, Any]:
    port = free_port()
    command = backend_command(port, "--host", HOST)
    env = {
        "SSECHAT_ENGINE": "simulated",
        "SSECHAT_SIM_TOKENS_PER_S": "1",  # 1,000 tokens: only a cancellation ends them
        "SSECHAT_SIM_FILL_MAX_TOKENS": "1",
        "SSECHAT_RESUME_GRACE_S": str(STORM_GRACE_S),
    }
    redis = None
    if workers > 1:
        redis_port = free_port()
        redis = start_redis(redis_port)
        command += ["--workers", str(workers), "--hub", "redis"]
        command += ["--redis-url", f"redis://{HOST}:{redis_port}/0"]
    try:
        cpus = None if workers > 1 else "0"
        with Server(f"storm-{workers}", command, port, cpus=cpus, env=env) as server:
            return asyncio.run(_storm(server, count, workers))
    finally:
        if redis is not None:
            redis.kill()
            redis.wait()


def storm_rows(storm: dict[str, Any]) -> list[str]:
    hub = "memory, 1 worker" if storm["workers"] == 1 else f"redis, {storm['workers']} workers"
    target = storm["grace_s"] + 1.0
    stopped = storm["generations_stopped_s"]
    lag = f" (figures up to {storm['metrics_lag_s']} s old)" if storm["metrics_lag_s"] else ""
    verdict = (
        "met" if stopped is not None and stopped <= target + storm["metrics_lag_s"] else "missed"
    )
    return [
        f"| {hub}: streams opened, each to its first event | {storm['streams']} in "
        f"{storm['open_s']:.1f} s |",
        f"| {hub}: connections held (open SSE responses) | {storm['connections_held']:.0f} |",
        f"| {hub}: RSS idle → holding them → after | {storm['rss_idle_mb']:.0f} → "
        f"{storm['rss_held_mb']:.0f} → {storm['rss_after_mb']:.0f} MB "
        f"({storm['kb_per_held_stream']:.0f} KB per held stream) |",
        f"| {hub}: every response ended after the drop | {storm['responses_ended_s']:.2f} s |",
        f"| {hub}: every generation stopped after the drop (target: grace "
        f"{storm['grace_s']:g} s + 1 s){lag} | {stopped:.2f} s, {verdict} |",
        f"| {hub}: server CPU to free them | {storm['cpu_s_to_free']:.2f} s |",
        f"| {hub}: asyncio tasks idle → after | {storm['tasks_idle']:g} → "
        f"{storm['tasks_after']:g} |",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=800)
    parser.add_argument("--storm", type=int, default=1000, help="streams dropped (memory hub)")
    parser.add_argument(
        "--storm-redis", type=int, default=300, help="streams dropped (Redis hub, 2 workers)"
    )
    args = parser.parse_args(argv)
    port = free_port()
    command = [sys.executable, "-m", "backend", "--host", HOST, "--port", str(port)]
    env = {"SSECHAT_ENGINE": "simulated", "SSECHAT_API_KEYS": KEY, "SSECHAT_LOG_LEVEL": "warning"}
    with Server("reliability", command, port, env=env) as server:
        bombs = header_bombs(server)
        loris = slowloris(server, args.connections)
    storms = [disconnect_storm(args.storm)]
    if args.storm_redis and shutil.which("redis-server"):
        storms.append(disconnect_storm(args.storm_redis, workers=2))
    result = {"header_bombs": bombs, "slowloris": loris, "storms": storms}
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "reliability.json", result)
    rows = [
        "| measure | value |",
        "|---|---|",
        f"| header bombs (1×64 MiB, 4×16 MiB): answers | {', '.join(bombs['statuses'])} |",
        f"| RSS before → after | {bombs['rss_before_mb']:.0f} → {bombs['rss_after_mb']:.0f} MB |",
        f"| 431 after (64 MiB / 16 MiB ×4) | {bombs['answer_64mib_ms']:.0f} / "
        f"{bombs['answer_16mib_max_ms']:.0f} ms |",
        f"| slowloris connections dropped | {loris['dropped']} / {loris['connections']} |",
        f"| dropped after (median / max) | {loris['dropped_after_s_median']:.1f} / "
        f"{loris['dropped_after_s_max']:.1f} s |",
        f"| /healthz during slowloris (median) | {loris['healthz_ms_median']:.1f} ms "
        f"({loris['healthz_answered']} probes) |",
    ]
    for storm in storms:
        rows += storm_rows(storm)
    sys.stdout.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

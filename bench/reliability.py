"""Reliability of the HTTP layer: header bombs and slowloris against ``python -m backend``.

1. Header bombs: the server's RSS before and after one 64 MiB header and
   four parallel 16 MiB headers (keys on, so a route would answer 401), and
   how long each takes to get its 431.
2. Slowloris: ``--connections`` connections, half silent, half trickling one
   header byte every 2 s; how many the server drops, how soon after they
   opened (the header timeout, default 10 s), and ``/healthz`` latency while
   they are open.

``python -m bench.reliability [--connections 800]`` prints a markdown table and
writes bench/results/reliability.json. About 20 s.
"""

from __future__ import annotations

import argparse
import select
import socket
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.support import HOST, RESULTS, Server, free_port, http_get, rss_bytes, write_json

KEY = "sk-reliability-bench"
PARTIAL = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
TRICKLE_S = 2.0


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=800)
    args = parser.parse_args(argv)
    port = free_port()
    command = [sys.executable, "-m", "backend", "--host", HOST, "--port", str(port)]
    env = {"SSECHAT_ENGINE": "simulated", "SSECHAT_API_KEYS": KEY, "SSECHAT_LOG_LEVEL": "warning"}
    with Server("reliability", command, port, env=env) as server:
        bombs = header_bombs(server)
        loris = slowloris(server, args.connections)
    result = {"header_bombs": bombs, "slowloris": loris}
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
    sys.stdout.write("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

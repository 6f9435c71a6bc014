"""Issue 11, goal 3: many open idle streams on one worker, keep-alive pings only.

The server (``python -m backend``, memory hub, one worker, pinned to core 0)
runs the simulated engine so slowly (``SSECHAT_SIM_TOKENS_PER_S``, default
one token per 1,000 s) that after its first event (the role chunk with the
first token) a stream stays silent for the whole run, and the hub's
keep-alive (``SSECHAT_KEEPALIVE_S``, set short here) is all it sends. A load
generator (pinned to core 1, asyncio + uvloop, raw sockets) opens N
connections, starts one stream on each over ``--ramp`` seconds, waits until
every stream has its first event, then holds them all open for ``--hold``
seconds and notes when each ``: ping`` line arrives.

A gap is the time between a stream's consecutive pings in the hold (the
first one measured from the hold's start). Every stream must get every
ping: a gap over twice the keep-alive interval is a missed ping; a gap over
the interval plus the hub's ticker period (it checks idle readers
``min(1 s, interval / 4)`` apart) plus 100 ms is a late one. Memory per
stream = (RSS during the hold - RSS before the connections opened) / N.

``python -m bench.idle_streams --n 10000 --keepalive 2 --hold 30``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from bench.many_streams import PATH
from bench.support import (
    CLIENT_CPUS,
    HOST,
    RESULTS,
    Sampler,
    Server,
    free_port,
    percentile,
    pinned,
    usage_between,
    write_json,
)

logger = logging.getLogger("bench.idle_streams")

PING = b": ping\n"
# Far enough apart that no stream sends a second token during a run.
SLOW_TOKENS_PER_S = 0.001

# -- load generator (runs in its own process) -----------------------------------------------


class _IdleStream(asyncio.Protocol):
    """One connection, one stream; notes when its first bytes and each ping arrive."""

    def __init__(self, request: bytes, opened: asyncio.Event, counter: list[int]) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.first_at = 0.0
        self.pings: list[float] = []
        self.tail = b""
        self.closed = False
        self._opened = opened
        self._counter = counter  # [streams that have their first event, N]
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connected.set_result(None)

    def send(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.first_at:
            self.first_at = now
            self._counter[0] += 1
            if self._counter[0] == self._counter[1]:
                self._opened.set()
        buffer = self.tail + data
        self.pings.extend(now for _ in range(buffer.count(PING)))
        # A ping split across two reads is counted once it is whole.
        self.tail = buffer[-(len(PING) - 1) :]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.connected.done():
            self.connected.set_exception(exc or ConnectionError("closed before connected"))


def idle_request(port: int) -> bytes:
    """A short streaming request; on a server whose simulated engine is set very slow
    (``SSECHAT_SIM_TOKENS_PER_S``) it stays open and idle."""
    body = json.dumps(
        {
            "model": "ssechat-simulated",
            "messages": [{"role": "user", "content": "Wait with me."}],
            "stream": True,
            "max_tokens": 4,
        }
    ).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(port: int, n: int, ramp_s: float, hold_s: float, keepalive_s: float) -> Any:
    loop = asyncio.get_running_loop()
    request = idle_request(port)
    opened = asyncio.Event()
    counter = [0, n]
    streams = [_IdleStream(request, opened, counter) for _ in range(n)]
    gate = asyncio.Semaphore(100)  # connect in waves: the listen backlog is finite

    async def connect(stream: _IdleStream) -> None:
        async with gate:
            await loop.create_connection(lambda: stream, HOST, port)

    await asyncio.gather(*(connect(stream) for stream in streams))
    sys.stdout.write(f"CONNECTED {n}\n")
    sys.stdout.flush()
    await asyncio.sleep(0.5)  # let the orchestrator note the connected-but-idle RSS
    started = time.perf_counter()
    base = loop.time() + 0.05
    for index, stream in enumerate(streams):
        loop.call_at(base + ramp_s * index / n, stream.send)
    with contextlib.suppress(TimeoutError):  # the summary counts the unopened
        await asyncio.wait_for(opened.wait(), timeout=ramp_s + 60)
    open_s = time.perf_counter() - started
    hold_from = time.perf_counter()
    sys.stdout.write(f"OPEN {counter[0]}\n")
    sys.stdout.flush()
    await asyncio.sleep(hold_s)
    hold_until = time.perf_counter()
    sys.stdout.write("HELD\n")
    sys.stdout.flush()
    for stream in streams:
        if stream.transport is not None:
            stream.transport.close()
    return _summarise(streams, hold_from, hold_until, open_s, keepalive_s)


def _summarise(
    streams: list[_IdleStream],
    hold_from: float,
    hold_until: float,
    open_s: float,
    keepalive_s: float,
) -> dict[str, Any]:
    period = min(1.0, keepalive_s / 4)
    late_after = keepalive_s + period + 0.1
    gaps: list[float] = []
    missed = late = closed = unopened = pings = 0
    late_at: collections.Counter[int] = collections.Counter()  # when late pings came
    for stream in streams:
        if not stream.first_at:
            unopened += 1
            continue
        if stream.closed:
            closed += 1
        # The pings in the hold, then its end: the silence after the last ping counts too.
        ends = [at for at in stream.pings if at >= hold_from] + [hold_until]
        starts = [hold_from, *ends[:-1]]
        stream_gaps = [end - start for start, end in zip(starts, ends, strict=True)]
        pings += len(ends) - 1
        gaps.extend(stream_gaps[:-1])
        for gap, at in zip(stream_gaps, ends, strict=True):
            if gap > late_after:
                late_at[round(at - hold_from)] += 1
        longest = max(stream_gaps)
        if longest > 2 * keepalive_s:
            missed += 1
        elif longest > late_after:
            late += 1
    n = len(streams)
    held = hold_until - hold_from
    return {
        "n": n,
        "open_s": open_s,
        "hold_s": held,
        "unopened": unopened,
        "closed_early": closed,
        "pings": pings,
        "pings_expected_per_stream": held / keepalive_s,
        "pings_per_stream": pings / max(n - unopened, 1),
        "gap_s": {
            "p50": percentile(gaps, 50),
            "p99": percentile(gaps, 99),
            "max": max(gaps, default=float("nan")),
        },
        "late_after_s": late_after,
        "streams_with_a_late_ping": late,
        "streams_with_a_missed_ping": missed,
        "late_pings_by_second_of_hold": dict(sorted(late_at.items())),
    }


def client_main(args: argparse.Namespace) -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(_client(args.port, args.n, args.ramp, args.hold, args.keepalive))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


# -- orchestrator ----------------------------------------------------------------------------


@dataclass
class IdleResult:
    n: int
    keepalive_s: float
    client: dict[str, Any]
    rss_before_mb: float
    rss_connected_mb: float
    rss_open_mb: float
    kb_per_connection: float
    kb_per_open_stream: float
    hold_cpu_percent: float
    hold_wait_percent: float
    cpu_us_per_ping: float


def run_one(n: int, *, keepalive_s: float, ramp_s: float, hold_s: float) -> IdleResult:
    port = free_port()
    env = {
        "SSECHAT_SIM_TOKENS_PER_S": str(SLOW_TOKENS_PER_S),
        "SSECHAT_SIM_FILL_MAX_TOKENS": "1",
        "SSECHAT_KEEPALIVE_S": str(keepalive_s),
        # The connections open before their requests go out (to weigh a bare
        # connection apart): the idle and header timeouts must not close them.
        "SSECHAT_KEEP_ALIVE_TIMEOUT_S": "600",
        "SSECHAT_HEADER_TIMEOUT_S": "0",
    }
    command = [sys.executable, "-m", "backend", "--engine", "simulated", "--port", str(port)]
    server = Server(f"idle-{n}", [*command, "--log-level", "warning"], port, env=env)
    with server, Sampler([server.pid], interval_s=0.25) as sampler:
        time.sleep(0.5)
        rss_before = sampler.snapshot().rss
        client = subprocess.Popen(
            pinned(
                [
                    *(sys.executable, "-m", "bench.idle_streams", "client"),
                    *("--port", str(port), "--n", str(n), "--ramp", str(ramp_s)),
                    *("--hold", str(hold_s), "--keepalive", str(keepalive_s)),
                ],
                CLIENT_CPUS,
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdout is not None
        rss_connected = 0
        hold_start = hold_end = None
        result: dict[str, Any] | None = None
        for line in client.stdout:
            if line.startswith("CONNECTED"):
                time.sleep(0.3)
                rss_connected = sampler.snapshot().rss
            elif line.startswith("OPEN"):
                hold_start = sampler.snapshot()
            elif line.startswith("HELD"):
                hold_end = sampler.snapshot()
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT ") :])
        client.wait(timeout=60)
    if result is None or hold_start is None or hold_end is None:
        raise RuntimeError(f"load generator failed (exit {client.returncode})")
    rss_open = max(
        (s.rss for s in sampler.samples if hold_start.at <= s.at <= hold_end.at), default=0
    )
    cpu_percent, wait_percent = usage_between(hold_start, hold_end)
    cpu_s = hold_end.cpu_s - hold_start.cpu_s
    return IdleResult(
        n=n,
        keepalive_s=keepalive_s,
        client=result,
        rss_before_mb=rss_before / 2**20,
        rss_connected_mb=rss_connected / 2**20,
        rss_open_mb=rss_open / 2**20,
        kb_per_connection=(rss_connected - rss_before) / 1024 / n,
        kb_per_open_stream=(rss_open - rss_before) / 1024 / n,
        hold_cpu_percent=cpu_percent,
        hold_wait_percent=wait_percent,
        cpu_us_per_ping=1e6 * cpu_s / max(int(result["pings"]), 1),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    client = sub.add_parser("client", help="the load generator (started by the orchestrator)")
    client.add_argument("--port", type=int, required=True)
    client.add_argument("--n", type=int, required=True)
    client.add_argument("--ramp", type=float, required=True)
    client.add_argument("--hold", type=float, required=True)
    client.add_argument("--keepalive", type=float, required=True)
    parser.add_argument("--n", default="10000", help="comma-separated stream counts")
    parser.add_argument("--keepalive", type=float, default=2.0, help="SSECHAT_KEEPALIVE_S")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which streams start")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds all streams stay open")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "client":
        client_main(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    runs = []
    for n in [int(item) for item in args.n.split(",") if item]:
        result = run_one(n, keepalive_s=args.keepalive, ramp_s=args.ramp, hold_s=args.hold)
        gaps = result.client["gap_s"]
        logger.info(
            "N=%d keep-alive %.1f s: %.1f KB/open stream (%.1f KB/connection), pings %.1f per "
            "stream (%.1f expected), gap p50 %.2f s p99 %.2f s max %.2f s, streams with a "
            "late ping %d, a missed ping %d, unopened %d; server %.0f%% CPU in the hold, "
            "%.1f us per ping, run-queue wait %.0f%%",
            n,
            args.keepalive,
            result.kb_per_open_stream,
            result.kb_per_connection,
            result.client["pings_per_stream"],
            result.client["pings_expected_per_stream"],
            gaps["p50"],
            gaps["p99"],
            gaps["max"],
            result.client["streams_with_a_late_ping"],
            result.client["streams_with_a_missed_ping"],
            result.client["unopened"],
            result.hold_cpu_percent,
            result.cpu_us_per_ping,
            result.hold_wait_percent,
        )
        runs.append(asdict(result))
    write_json(
        args.out or RESULTS / "idle_streams.json",
        {"keepalive_s": args.keepalive, "runs": runs, "finished_at": time.time()},
    )


if __name__ == "__main__":
    main()

"""The three dialects side by side: events/s and server CPU per event at 20 tokens/s.

One server (``python -m backend``, simulated engine at 20 tokens/s, every
answer runs to ``max_tokens``), pinned to core 0, serves all three dialects
in one run. This process (pinned to core 1) is the load generator: in each
round, each dialect in turn (the order rotates per round) opens ``--n``
streams spread over ``--ramp`` seconds on raw sockets (``Connection: close``,
so a stream ends when the server closes it) and counts the ``id:`` lines and
bytes that arrive. The server's CPU time comes from /proc, from the first
request of a dialect's batch to the end of its last stream.

Per dialect: events and tokens per second, CPU per event and per token
(Responses and Messages send a few framing events per answer besides the
deltas, so per token is the fair cost of an answer), bytes per event, and
each figure's ratio to Chat Completions *in the same round*; the table shows
the median over rounds. The machine is shared: ratios within a round are
what to read, not absolute figures.

``python -m bench.dialects [--rounds 3] [--n 300] [--tokens 100]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, cast

from bench.support import (
    CLIENT_CPUS,
    HOST,
    RESULTS,
    Server,
    backend_command,
    cpu_seconds,
    free_port,
    machine,
    write_json,
)

logger = logging.getLogger("bench.dialects")

RATE = 20.0
MODEL = "ssechat-simulated"
PROMPT = "Benchmark: explain Server-Sent Events."
DIALECTS = ("chat", "responses", "messages")
_ID = re.compile(rb"\nid: \d+\n")


def request_body(dialect: str, tokens: int, seed: int) -> tuple[str, dict[str, Any]]:
    messages = [{"role": "user", "content": f"{PROMPT} ({seed})"}]
    if dialect == "chat":
        body = {"model": MODEL, "messages": messages, "max_tokens": tokens, "stream": True}
        return "/v1/chat/completions", body
    if dialect == "responses":
        body = {"model": MODEL, "input": messages, "max_output_tokens": tokens, "stream": True}
        return "/v1/responses", body
    body = {"model": MODEL, "messages": messages, "max_tokens": tokens, "stream": True}
    return "/v1/messages", body


def request_bytes(port: int, dialect: str, tokens: int, seed: int) -> bytes:
    path, body = request_body(dialect, tokens, seed)
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: text/event-stream\r\nConnection: close\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


class _Stream(asyncio.Protocol):
    """One request; counts the events (``id:`` lines) and bytes of its response."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.events = 0
        self.bytes = 0
        self.status = b""
        self._tail = b"\n"  # so the first line's "id:" is found like any other
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast(asyncio.Transport, transport).write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self.status:
            self.status = data[:12]
        self.bytes += len(data)
        buffer = self._tail + data
        last = buffer.rfind(b"\n")
        self.events += len(_ID.findall(buffer, 0, last + 1))
        self._tail = buffer[last:]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_result(None)


@dataclass
class Batch:
    dialect: str
    round: int
    streams: int
    ok: int
    events: int
    bytes: int
    tokens: int
    wall_s: float
    server_cpu_s: float

    @property
    def cpu_per_event_us(self) -> float:
        return self.server_cpu_s / max(self.events, 1) * 1e6

    @property
    def cpu_per_token_us(self) -> float:
        return self.server_cpu_s / max(self.tokens, 1) * 1e6

    @property
    def events_per_s(self) -> float:
        return self.events / self.wall_s

    @property
    def bytes_per_event(self) -> float:
        return self.bytes / max(self.events, 1)


async def run_batch(
    port: int, pid: int, dialect: str, n: int, tokens: int, ramp_s: float, round_index: int
) -> Batch:
    loop = asyncio.get_running_loop()
    streams = [
        _Stream(request_bytes(port, dialect, tokens, seed))
        for seed in range(round_index * n, (round_index + 1) * n)
    ]
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()

    async def open_one(index: int, stream: _Stream) -> None:
        await asyncio.sleep(ramp_s * index / n)
        await loop.create_connection(lambda: stream, HOST, port)
        await stream.finished

    await asyncio.gather(*(open_one(index, stream) for index, stream in enumerate(streams)))
    wall = time.perf_counter() - started
    server_cpu = cpu_seconds(pid) - cpu_before
    ok = sum(1 for stream in streams if stream.status.startswith(b"HTTP/1.1 200"))
    return Batch(
        dialect=dialect,
        round=round_index,
        streams=n,
        ok=ok,
        events=sum(stream.events for stream in streams),
        bytes=sum(stream.bytes for stream in streams),
        tokens=ok * tokens,
        wall_s=wall,
        server_cpu_s=server_cpu,
    )


def summarise(batches: list[Batch]) -> list[dict[str, Any]]:
    """Per dialect: medians over rounds, and each figure's ratio to chat in its round."""
    rows = []
    for dialect in DIALECTS:
        mine = [b for b in batches if b.dialect == dialect]
        ratios_event = []
        ratios_token = []
        for batch in mine:
            chat = next(b for b in batches if b.dialect == "chat" and b.round == batch.round)
            ratios_event.append(batch.cpu_per_event_us / chat.cpu_per_event_us)
            ratios_token.append(batch.cpu_per_token_us / chat.cpu_per_token_us)
        rows.append(
            {
                "dialect": dialect,
                "events_per_stream": statistics.median(b.events / max(b.ok, 1) for b in mine),
                "events_per_s": statistics.median(b.events_per_s for b in mine),
                "tokens_per_s": statistics.median(b.tokens / b.wall_s for b in mine),
                "server_cpu_pct": statistics.median(100 * b.server_cpu_s / b.wall_s for b in mine),
                "cpu_per_event_us": statistics.median(b.cpu_per_event_us for b in mine),
                "cpu_per_token_us": statistics.median(b.cpu_per_token_us for b in mine),
                "bytes_per_event": statistics.median(b.bytes_per_event for b in mine),
                "cpu_per_event_vs_chat": statistics.median(ratios_event),
                "cpu_per_token_vs_chat": statistics.median(ratios_token),
                "completed": f"{sum(b.ok for b in mine)}/{sum(b.streams for b in mine)}",
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| dialect | events per answer | events/s | tokens/s | server CPU | CPU per event "
        "| vs chat | CPU per token | vs chat | bytes per event | completed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dialect']} | {row['events_per_stream']:.0f} | {row['events_per_s']:,.0f} "
            f"| {row['tokens_per_s']:,.0f} | {row['server_cpu_pct']:.0f}% "
            f"| {row['cpu_per_event_us']:.1f} µs | {row['cpu_per_event_vs_chat']:.2f}× "
            f"| {row['cpu_per_token_us']:.1f} µs | {row['cpu_per_token_vs_chat']:.2f}× "
            f"| {row['bytes_per_event']:.0f} | {row['completed']} |"
        )
    return "\n".join(lines)


async def run(args: argparse.Namespace, server: Server) -> list[Batch]:
    batches: list[Batch] = []
    # One unmeasured batch per dialect: imports, caches and first allocations.
    for dialect in DIALECTS:
        await run_batch(server.port, server.pid, dialect, 20, 5, 0.2, 1000)
    for round_index in range(args.rounds):
        order = DIALECTS[round_index % 3 :] + DIALECTS[: round_index % 3]
        for dialect in order:
            batch = await run_batch(
                server.port, server.pid, dialect, args.n, args.tokens, args.ramp, round_index
            )
            logger.info(
                "round %d %-9s %d/%d streams, %d events, %.1f µs CPU/event, %.1f µs CPU/token",
                round_index,
                dialect,
                batch.ok,
                batch.streams,
                batch.events,
                batch.cpu_per_event_us,
                batch.cpu_per_token_us,
            )
            batches.append(batch)
    return batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--n", type=int, default=300, help="streams per dialect per round")
    parser.add_argument("--tokens", type=int, default=100, help="tokens per answer")
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds over which streams start")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if CLIENT_CPUS is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(cpu) for cpu in CLIENT_CPUS.split(",")})
    port = free_port()
    server = Server(
        "dialects",
        backend_command(port, "--host", HOST),
        port,
        env={
            "SSECHAT_ENGINE": "simulated",
            "SSECHAT_SIM_TOKENS_PER_S": str(RATE),
            "SSECHAT_SIM_FILL_MAX_TOKENS": "1",
            "SSECHAT_MAX_STREAMS": "100000",
        },
    )
    with server:
        batches = asyncio.run(run(args, server))
    rows = summarise(batches)
    write_json(
        RESULTS / "dialects.json",
        {
            "args": vars(args),
            "machine": machine(),
            "rows": rows,
            "batches": [
                {
                    **asdict(b),
                    "cpu_per_event_us": b.cpu_per_event_us,
                    "cpu_per_token_us": b.cpu_per_token_us,
                }
                for b in batches
            ],
        },
    )
    sys.stdout.write(table(rows) + "\n")


if __name__ == "__main__":
    main()

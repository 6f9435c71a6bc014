"""Soak: hours-in-minutes of mixed traffic; nothing lost, nothing leaked, memory flat.

A ``python -m backend`` server (simulated engine, pinned to core 0) gets
``--concurrency`` streams in flight at all times for ``--duration`` seconds
(default 600; ``--quick``: 60), from this process (pinned to core 1). Each
stream plays one scenario:

- ``normal``: read to ``[DONE]``;
- ``cancel``: read a few events, ``POST …/cancel``, read on to ``[DONE]``
  (the final chunk must say ``finish_reason: "cancelled"``);
- ``disconnect``: read a few events and hang up (the server abandons the
  generation after ``resume_grace_s``);
- ``resume``: read a few events, hang up, reconnect with ``Last-Event-ID``
  and read to ``[DONE]``.

Checks, per stream: ids are 1, 2, 3 … with no gap and no repeat across the
first connection and the resumed one; every chunk carries the stream's id;
the end is right for the scenario. Every resumed stream, and one normal
stream in twenty, is then replayed whole from the server (``Last-Event-ID:
0``) and compared payload by payload with what was received: a lost,
duplicated or altered event shows up here.

Then a cancel storm (``--cancels``, default 1,000: start, read one event,
cancel, read to the end) and a quiet period; leaks are read from the
server's own gauges (``/metrics``: asyncio tasks, threads, live streams,
held slots) before the load and after it. RSS is sampled every second; the
growth is measured from the end of the warm-up (``--warmup``, default a
fifth of the run, at least ``stream_ttl_s``, the time finished streams stay
resumable, plus a stream's length) to the end.

``python -m bench.soak [--quick] [--duration S] [--concurrency N] [--rate TOK_PER_S]``
prints a markdown table and writes ``bench/results/soak.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.support import HOST, RESULTS, Server, backend_command, free_port, rss_bytes, write_json

logger = logging.getLogger("bench.soak")

CHAT = "/v1/chat/completions"
SCENARIOS = ("normal", "cancel", "disconnect", "resume")
WEIGHTS = (0.5, 0.2, 0.15, 0.15)
STREAM_TTL_S = 20.0
RESUME_GRACE_S = 3.0
TARGET_RSS_GROWTH = 5.0  # percent, after warm-up


# -- a tiny HTTP/1.1 + SSE client: one connection per request, chunked bodies --------------


class HTTPError(Exception):
    pass


@dataclass
class Event:
    seq: int
    data: str


class Response:
    """An open response; ``events()`` yields SSE events as they arrive."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self._buffer = b""

    async def read_head(self) -> None:
        status_line = await self.reader.readline()
        if not status_line:
            raise HTTPError("connection closed before the status line")
        self.status = int(status_line.split()[1])
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()

    async def _chunks(self) -> Any:
        if self.headers.get("transfer-encoding", "").lower() != "chunked":
            length = int(self.headers.get("content-length", "0"))
            if length:
                yield await self.reader.readexactly(length)
            return
        while True:
            size_line = await self.reader.readline()
            if not size_line:
                raise HTTPError("connection closed inside a chunked body")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                await self.reader.readline()
                return
            data = await self.reader.readexactly(size)
            await self.reader.readexactly(2)
            yield data

    async def body(self) -> bytes:
        return b"".join([chunk async for chunk in self._chunks()])

    async def events(self) -> Any:
        async for chunk in self._chunks():
            self._buffer += chunk
            while b"\n\n" in self._buffer:
                block, self._buffer = self._buffer.split(b"\n\n", 1)
                seq, data = -1, None
                for line in block.split(b"\n"):
                    if line.startswith(b"id: "):
                        seq = int(line[4:])
                    elif line.startswith(b"data: "):
                        data = line[6:].decode()
                    # ": ping" comments and "retry:" need nothing
                if data is not None:
                    yield Event(seq, data)
            # A comment alone ends with one LF (no blank line): drop complete comment lines.
            while self._buffer.startswith(b":") and b"\n" in self._buffer:
                self._buffer = self._buffer.split(b"\n", 1)[1]

    def close(self) -> None:
        self.writer.close()


async def request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Response:
    reader, writer = await asyncio.open_connection(HOST, port)
    payload = b"" if body is None else json.dumps(body).encode()
    head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
    response = Response(reader, writer)
    await response.read_head()
    return response


# -- the load ---------------------------------------------------------------------------


@dataclass
class Tally:
    started: Counter[str] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    events: int = 0
    lost: int = 0  # ids skipped, or events missing against the server's replay
    duplicated: int = 0  # ids seen twice
    altered: int = 0  # payload differs from the server's replay
    wrong_end: int = 0  # ended without the ending its scenario requires
    foreign_chunks: int = 0  # a chunk carrying another stream's id
    refused: Counter[int] = field(default_factory=Counter)  # HTTP status of refused requests
    transport_errors: Counter[str] = field(default_factory=Counter)
    replays_compared: int = 0
    cancels: int = 0
    streams_opened: int = 0  # POSTs answered 200 (a stream started)
    resumes: int = 0  # reconnections with Last-Event-ID > 0 that found their stream


class Soak:
    def __init__(self, port: int, rate: float, seed: int) -> None:
        self.port = port
        self.rate = rate
        self.random = random.Random(seed)
        self.tally = Tally()

    def body(self) -> dict[str, Any]:
        return {
            "messages": [{"role": "user", "content": f"soak {self.random.random()}"}],
            "stream": True,
            "max_tokens": 200,
            "seed": self.random.randrange(1 << 30),
        }

    def check(self, stream_id: str, events: list[Event], first_seq: int) -> None:
        expected = first_seq
        seen: set[int] = set()
        for event in events:
            if event.seq in seen:
                self.tally.duplicated += 1
                continue
            seen.add(event.seq)
            if event.seq > expected:
                self.tally.lost += event.seq - expected
            expected = event.seq + 1
            if event.data != "[DONE]" and f'"id":"{stream_id}"' not in event.data:
                self.tally.foreign_chunks += 1
        self.tally.events += len(events)

    def ended_right(self, events: list[Event], finish: set[str]) -> bool:
        if len(events) < 2 or events[-1].data != "[DONE]":
            return False
        last = json.loads(events[-2].data)
        choices = last.get("choices") or []
        return bool(choices) and choices[0].get("finish_reason") in finish

    async def read(self, response: Response, out: list[Event], limit: int | None = None) -> None:
        async for event in response.events():
            out.append(event)
            if limit is not None and len(out) >= limit:
                return

    async def compare_with_replay(self, stream_id: str, received: list[Event]) -> None:
        response = await request(
            self.port, "GET", f"{CHAT}/{stream_id}/events", headers={"Last-Event-ID": "0"}
        )
        try:
            if response.status != 200:
                self.tally.refused[response.status] += 1
                return
            replay: list[Event] = []
            await self.read(response, replay)
        finally:
            response.close()
        by_seq = {event.seq: event.data for event in received}
        for event in replay:
            if event.seq not in by_seq:
                self.tally.lost += 1
            elif by_seq[event.seq] != event.data:
                self.tally.altered += 1
        self.tally.replays_compared += 1

    async def one(self, scenario: str) -> None:
        self.tally.started[scenario] += 1
        response = await request(self.port, "POST", CHAT, self.body())
        if response.status != 200:
            self.tally.refused[response.status] += 1
            await response.body()
            response.close()
            return
        self.tally.streams_opened += 1
        stream_id = response.headers["x-stream-id"]
        events: list[Event] = []
        try:
            if scenario == "normal":
                await self.read(response, events)
                self.check(stream_id, events, 1)
                if not self.ended_right(events, {"stop", "length"}):
                    self.tally.wrong_end += 1
                if self.random.random() < 0.05:
                    await self.compare_with_replay(stream_id, events)
            elif scenario == "cancel":
                await self.read(response, events, limit=self.random.randint(2, 6))
                cancel = await request(self.port, "POST", f"{CHAT}/{stream_id}/cancel")
                await cancel.body()
                cancel.close()
                self.tally.cancels += 1
                await self.read(response, events)
                self.check(stream_id, events, 1)
                # "stop"/"length" when the answer finished before the cancel landed
                if not self.ended_right(events, {"cancelled", "stop", "length"}):
                    self.tally.wrong_end += 1
            elif scenario == "disconnect":
                await self.read(response, events, limit=self.random.randint(2, 6))
                self.check(stream_id, events, 1)
            else:  # resume
                await self.read(response, events, limit=self.random.randint(2, 6))
                response.close()
                await asyncio.sleep(self.random.uniform(0.05, RESUME_GRACE_S / 3))
                last = events[-1].seq
                response = await request(
                    self.port,
                    "GET",
                    f"{CHAT}/{stream_id}/events",
                    headers={"Last-Event-ID": str(last)},
                )
                if response.status in (200, 204):
                    self.tally.resumes += 1
                if response.status != 200:
                    self.tally.refused[response.status] += 1
                    return
                await self.read(response, events)
                self.check(stream_id, events, 1)
                if not self.ended_right(events, {"stop", "length"}):
                    self.tally.wrong_end += 1
                await self.compare_with_replay(stream_id, events)
            self.tally.completed[scenario] += 1
        finally:
            response.close()

    async def run_one(self, scenario: str) -> None:
        try:
            await self.one(scenario)
        except (OSError, HTTPError, asyncio.IncompleteReadError, ValueError) as error:
            self.tally.transport_errors[type(error).__name__] += 1

    async def worker(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            scenario = self.random.choices(SCENARIOS, WEIGHTS)[0]
            await self.run_one(scenario)

    async def cancel_storm(self, count: int, parallel: int = 50) -> None:
        gate = asyncio.Semaphore(parallel)

        async def one() -> None:
            async with gate:
                await self.run_one("cancel")

        await asyncio.gather(*(one() for _ in range(count)))


# -- measuring the server ---------------------------------------------------------------------


def gauges(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for name in (
        "ssechat_asyncio_tasks",
        "ssechat_threads",
        "ssechat_hub_live_streams",
        "ssechat_hub_stored_streams",
        "ssechat_streams_active",
        "ssechat_stream_slots_held",
    ):
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        found[name] = float(match.group(1)) if match else float("nan")
    return found


def counters(port: int) -> dict[str, float]:
    """Counters the server keeps of what the clients did (summed over their labels)."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: dict[str, float] = {}
    for name in ("ssechat_streams_total", "ssechat_resumes_total"):
        pattern = rf"^{name}(?:{{[^}}]*}})? (\S+)$"
        found[name] = sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))
    return found


# anyio retires a pool thread idle for 10 s when the next job comes (a /metrics
# request is one: FastAPI runs plain ``def`` dependencies in that pool).
THREAD_POOL_IDLE_S = 10.0


async def wait_idle(port: int, timeout_s: float) -> dict[str, float]:
    """Gauges once no generation runs, no response is open, and idle pool threads
    have been retired (or at the timeout)."""
    deadline = time.monotonic() + timeout_s
    while True:
        values = await asyncio.to_thread(gauges, port)
        idle = values["ssechat_hub_live_streams"] == 0 and values["ssechat_streams_active"] == 0
        if idle or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(THREAD_POOL_IDLE_S + 1)
    await asyncio.to_thread(gauges, port)  # the job that retires them
    return await asyncio.to_thread(gauges, port)


async def sample_rss(pid: int, every_s: float, samples: list[tuple[float, int]]) -> None:
    start = time.monotonic()
    while True:
        samples.append((time.monotonic() - start, rss_bytes(pid)))
        await asyncio.sleep(every_s)


async def soak(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    runner = Soak(server.port, args.rate, args.seed)
    # warm the server's code paths and pools before the baseline
    await asyncio.gather(*(runner.run_one("normal") for _ in range(20)))
    before = await wait_idle(server.port, 30)
    counted_before = await asyncio.to_thread(counters, server.port)
    runner.tally = Tally()

    samples: list[tuple[float, int]] = []
    sampler = asyncio.create_task(sample_rss(server.pid, 1.0, samples))
    deadline = time.monotonic() + args.duration
    started = time.monotonic()
    await asyncio.gather(*(runner.worker(deadline) for _ in range(args.concurrency)))
    soak_s = time.monotonic() - started
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    middle = await wait_idle(server.port, 60)

    storm_started = time.monotonic()
    cancels_before = runner.tally.cancels
    await runner.cancel_storm(args.cancels)
    storm_s = time.monotonic() - storm_started
    after = await wait_idle(server.port, 60)
    counted_after = await asyncio.to_thread(counters, server.port)

    warm = [rss for at, rss in samples if at >= args.warmup]
    rss_warm, rss_end = (warm[0], warm[-1]) if warm else (0, 0)
    growth = 100.0 * (rss_end - rss_warm) / rss_warm if rss_warm else float("nan")
    return {
        "duration_s": round(soak_s, 1),
        "concurrency": args.concurrency,
        "rate_tokens_per_s": args.rate,
        "warmup_s": args.warmup,
        "tally": {
            **asdict(runner.tally),
            "started": dict(runner.tally.started),
            "completed": dict(runner.tally.completed),
            "refused": dict(runner.tally.refused),
            "transport_errors": dict(runner.tally.transport_errors),
        },
        "storm": {"cancels": runner.tally.cancels - cancels_before, "seconds": round(storm_s, 1)},
        "rss": {
            "after_warmup_mb": round(rss_warm / 2**20, 1),
            "end_mb": round(rss_end / 2**20, 1),
            "peak_mb": round(max((rss for _, rss in samples), default=0) / 2**20, 1),
            "growth_percent": round(growth, 2),
            "samples": [(round(at, 1), rss) for at, rss in samples],
        },
        "server_counted": {
            name: counted_after[name] - counted_before[name] for name in counted_after
        },
        "gauges_before": before,
        "gauges_after_soak": middle,
        "gauges_after": after,
    }


def table(result: dict[str, Any]) -> str:
    tally = result["tally"]
    before, middle, after = (
        result["gauges_before"],
        result["gauges_after_soak"],
        result["gauges_after"],
    )
    rss = result["rss"]
    counted = result["server_counted"]

    def verdict(ok: bool) -> str:
        return "ok" if ok else "**FAIL**"

    completed = tally["completed"]
    rows = [
        (
            "duration",
            f"{result['duration_s']} s, {result['concurrency']} streams in flight",
            "",
            "",
        ),
        (
            "streams finished (normal / cancel / disconnect / resume)",
            " / ".join(str(completed.get(name, 0)) for name in SCENARIOS),
            "",
            "",
        ),
        ("events received", f"{tally['events']:,}", "", ""),
        ("replays compared with the server", str(tally["replays_compared"]), "", ""),
        (
            "streams started: clients / server's ssechat_streams_total",
            f"{tally['streams_opened']:,} / {counted['ssechat_streams_total']:,.0f}",
            "equal",
            verdict(tally["streams_opened"] == counted["ssechat_streams_total"]),
        ),
        (
            "resumes: clients / server's ssechat_resumes_total",
            f"{tally['resumes']:,} / {counted['ssechat_resumes_total']:,.0f}",
            "equal",
            verdict(tally["resumes"] == counted["ssechat_resumes_total"]),
        ),
        ("lost events", str(tally["lost"]), "0", verdict(tally["lost"] == 0)),
        ("duplicated events", str(tally["duplicated"]), "0", verdict(tally["duplicated"] == 0)),
        ("altered events", str(tally["altered"]), "0", verdict(tally["altered"] == 0)),
        (
            "chunks of another stream",
            str(tally["foreign_chunks"]),
            "0",
            verdict(not tally["foreign_chunks"]),
        ),
        ("wrong stream endings", str(tally["wrong_end"]), "0", verdict(tally["wrong_end"] == 0)),
        (
            "refused requests (status: count)",
            str(tally["refused"] or 0),
            "0",
            verdict(not tally["refused"]),
        ),
        (
            "transport errors",
            str(tally["transport_errors"] or 0),
            "0",
            verdict(not tally["transport_errors"]),
        ),
        (
            "RSS after warm-up → end",
            f"{rss['after_warmup_mb']} → {rss['end_mb']} MB (peak {rss['peak_mb']})",
            "",
            "",
        ),
        (
            "RSS growth after warm-up",
            f"{rss['growth_percent']} %",
            f"< {TARGET_RSS_GROWTH} %",
            verdict(rss["growth_percent"] < TARGET_RSS_GROWTH),
        ),
        (
            "cancels in total (storm)",
            f"{tally['cancels']} ({result['storm']['cancels']})",
            "≥ 1000",
            verdict(tally["cancels"] >= 1000),
        ),
    ]
    # Idle gauges: before the load, after the soak, after the cancel storm.
    for name, label, reference in (
        ("ssechat_asyncio_tasks", "asyncio tasks, idle", before),
        ("ssechat_threads", "threads, idle", before),
        ("ssechat_hub_live_streams", "live generations, idle", before),
        ("ssechat_stream_slots_held", "concurrency slots held, idle", before),
    ):
        ok = after[name] <= reference[name]
        value = f"{before[name]:g} → {middle[name]:g} → {after[name]:g}"
        rows.append(
            (f"{label}: before → after soak → after storm", value, "no growth", verdict(ok))
        )
    lines = ["| measure | value | target | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (600)")
    parser.add_argument("--quick", action="store_true", help="60 s of load (warm-up 35 s)")
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--rate", type=float, default=10.0, help="tokens/s of each stream")
    parser.add_argument("--cancels", type=int, default=1000, help="cancel storm size")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before RSS counts")
    parser.add_argument("--seed", type=int, default=20260)
    args = parser.parse_args(argv)
    if args.quick:
        args.duration = 60.0
    if args.warmup is None:
        # finished streams stay stored for STREAM_TTL_S after their last event:
        # memory plateaus once the oldest stored ones start expiring
        args.warmup = max(STREAM_TTL_S + 15, args.duration / 5)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {1})  # the load generator on core 1, the server on core 0

    port = free_port()
    server = Server(
        "soak",
        backend_command(port, "--host", HOST),
        port,
        env={
            "SSECHAT_ENGINE": "simulated",
            "SSECHAT_SIM_TOKENS_PER_S": str(args.rate),
            "SSECHAT_STREAM_TTL_S": str(STREAM_TTL_S),
            "SSECHAT_RESUME_GRACE_S": str(RESUME_GRACE_S),
        },
    )
    with server:
        try:
            import uvloop

            result = uvloop.run(soak(args, server))
        except ImportError:
            result = asyncio.run(soak(args, server))
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / "soak.json", result)
    sys.stdout.write(table(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Section 1: events/s of one streaming response path, ours vs the baselines.

Each server runs alone, pinned to core 0, with the same uvicorn settings;
wrk (one thread, pinned to core 1) POSTs the same request on keep-alive
connections and counts whole responses. events/s = responses/s x events per
response; the events per response and bytes per response are checked
against a reference fetch so a server that sends less cannot look faster.

The baselines replay the data payloads captured from one of our responses
(same count, shape and size). Servers run in rounds, each round in a
different order; ratios are taken within a round, then the median.

Two more rows run ours on other streams of about the same length: a tool call
(``ours_tools``: the first chunk of the call, then its argument pieces) and
the reasoning model (``ours_reasoning``: reasoning text, then the answer).
A ``--variant`` (ours from another tree, e.g. the code before a change) must
answer the plain request with the very same events (ids and ``created``
aside), so its row compares the same work.

``python -m bench.throughput [--rounds 3] [--duration 6] [--connections 32]``
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.support import (
    CLIENT_CPUS,
    RESULTS,
    Sampler,
    Server,
    free_port,
    pinned,
    usage_between,
    write_json,
)

logger = logging.getLogger("bench.throughput")

PATH = "/v1/chat/completions"
MODEL = "ssechat-simulated"
MAX_TOKENS = 200
PROMPT = "Benchmark: explain Server-Sent Events."

SERVERS = ("ours", "ours_tools", "ours_reasoning", "raw", "sse_starlette", "fastapi", "flask")
LABELS = {
    "ours": "ssechat (FastAPI + hub + encoder)",
    "ours_tools": "ssechat, a tool call (arguments streamed in pieces)",
    "ours_reasoning": "ssechat, reasoning model (reasoning, then the answer)",
    "raw": "raw Starlette StreamingResponse, pre-built bytes",
    "sse_starlette": "sse-starlette EventSourceResponse",
    "fastapi": "FastAPI built-in fastapi.sse.EventSourceResponse",
    "flask": "Flask tutorial server (threaded dev server)",
}

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "\\nWRK_JSON {{\\"requests\\":%d,\\"bytes\\":%d,\\"duration_us\\":%d," ..
    "\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d}}\\n",
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


# A tool whose arguments run to about MAX_TOKENS pieces: a list of short strings.
_LIST_TOOL = {
    "type": "function",
    "function": {
        "name": "save_notes",
        "parameters": {
            "type": "object",
            "properties": {
                "notes": {
                    "type": "array",
                    "items": {"type": "string", "maxLength": 12},
                    "minItems": 40,
                    "maxItems": 40,
                }
            },
            "required": ["notes"],
        },
    },
}
# What each of our rows asks for, beyond the plain request.
WORKLOADS: dict[str, dict[str, Any]] = {
    "ours": {},
    "ours_tools": {"tools": [_LIST_TOOL], "tool_choice": "required"},
    "ours_reasoning": {"model": "ssechat-simulated-reasoning", "reasoning_effort": "high"},
}


def workload(name: str) -> str:
    """The workload a server row runs (variants and baselines: the plain one)."""
    return name if name in WORKLOADS else "ours"


def request_body(seed: int, *, stream: bool = True, kind: str = "ours") -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": PROMPT}],
        "stream": stream,
        "max_tokens": MAX_TOKENS,
        "seed": seed,
        **WORKLOADS[kind],
    }


def comparable(data: list[str]) -> list[str]:
    """Event data without what differs between two runs of one request (id, created)."""
    out = []
    for item in data:
        if item.startswith("{"):
            value = json.loads(item)
            value.pop("id", None)
            value.pop("created", None)
            item = json.dumps(value, sort_keys=True)
        out.append(item)
    return out


def post(url: str, body: dict[str, Any], timeout: float = 30.0) -> tuple[dict[str, str], bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        headers = {key.lower(): value for key, value in response.headers.items()}
        return headers, bytes(response.read())


def sse_data(body: bytes) -> list[str]:
    """The data of each event (our format: one ``data:`` line per event)."""
    found = []
    for block in body.decode("utf-8").split("\n\n"):
        lines = [line for line in block.split("\n") if line.startswith("data: ")]
        if lines:
            found.append("\n".join(line[6:] for line in lines))
    return found


def server_for(
    name: str, *, payload_file: Path | None, variants: dict[str, Path] | None = None
) -> Server:
    port = free_port()
    python = sys.executable
    env = {"BENCH_PAYLOAD_FILE": str(payload_file)} if payload_file else {}
    variants = variants or {}
    if name in WORKLOADS or name in variants:
        ours = [python, "-m", "backend", "--engine", "simulated", "--port", str(port)]
        server = Server(
            name,
            [*ours, "--log-level", "warning"],
            port,
            env={"SSECHAT_SIM_TOKENS_PER_S": "0", "SSECHAT_SIM_FILL_MAX_TOKENS": "1"},
        )
        if name in variants:  # a patched copy of backend/ (its parent directory)
            server.cwd = variants[name]
            server.env["PYTHONPATH"] = str(variants[name])
        return server
    if name == "flask":
        command = [python, "-m", "bench.baselines.flask_tutorial", "--port", str(port)]
    else:
        command = [python, "-m", "bench.baselines.serve", name, "--port", str(port)]
    return Server(name, command, port, env=env, ready_path=PATH)


def longest_seed(base_url: str, tries: int = 48) -> tuple[int, int]:
    """The seed whose simulated answer is longest (up to MAX_TOKENS tokens)."""
    best = (0, -1)
    for seed in range(tries):
        _, raw = post(base_url + PATH, request_body(seed, stream=False))
        tokens = int(json.loads(raw)["usage"]["completion_tokens"])
        if tokens > best[1]:
            best = (seed, tokens)
        if tokens >= MAX_TOKENS:
            break
    return best


@dataclass
class Reference:
    seed: int
    tokens: int
    events: int
    body_bytes: int
    data: list[str]


def capture_references() -> dict[str, Reference]:
    """Start ours once: pick the request, record the events of each workload (the
    plain one is what the baselines replay)."""
    references = {}
    with server_for("ours", payload_file=None) as server:
        seed, _ = longest_seed(server.base_url)
        for kind in WORKLOADS:
            _, whole = post(server.base_url + PATH, request_body(seed, stream=False, kind=kind))
            tokens = int(json.loads(whole)["usage"]["completion_tokens"])
            _, body = post(server.base_url + PATH, request_body(seed, kind=kind))
            data = sse_data(body)
            if data[-1] != "[DONE]":
                raise RuntimeError(f"our {kind} response does not end with [DONE]")
            references[kind] = Reference(seed, tokens, len(data), len(body), data)
    return references


@dataclass
class Measurement:
    server: str
    round: int
    responses: int
    seconds: float
    responses_per_s: float
    events_per_response: int
    events_per_s: float
    wrk_bytes_per_response: float
    body_bytes: int
    server_cpu_percent: float
    server_wait_percent: float
    events_per_cpu_s: float
    errors: int


def run_wrk(url: str, body: dict[str, Any], *, connections: int, seconds: float) -> dict[str, Any]:
    script = RESULTS / "wrk-post.lua"
    script.write_text(_WRK_SCRIPT.format(body=json.dumps(body)), encoding="utf-8")
    command = pinned(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        CLIENT_CPUS,
    )
    out = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            parsed: dict[str, Any] = json.loads(line[len("WRK_JSON ") :])
            return parsed
    raise RuntimeError(f"wrk printed no summary:\n{out.stdout}\n{out.stderr}")


def measure(
    name: str,
    round_index: int,
    reference: Reference,
    payload_file: Path,
    *,
    connections: int,
    seconds: float,
    warmup_s: float,
    variants: dict[str, Path],
) -> Measurement:
    body = request_body(reference.seed, kind=workload(name))
    with server_for(name, payload_file=payload_file, variants=variants) as server:
        url = server.base_url + PATH
        headers, check = post(url, body)
        data = sse_data(check)
        if len(data) != reference.events or data[-1] != "[DONE]":
            raise RuntimeError(f"{name}: {len(data)} events, expected {reference.events}")
        if name in variants and comparable(data) != comparable(reference.data):
            raise RuntimeError(f"{name}: the events differ from ours (same request)")
        if "text/event-stream" not in headers.get("content-type", ""):
            raise RuntimeError(f"{name}: content-type {headers.get('content-type')}")
        run_wrk(url, body, connections=connections, seconds=warmup_s)
        with Sampler([server.pid], interval_s=0.5) as sampler:
            summary = run_wrk(url, body, connections=connections, seconds=seconds)
    responses = int(summary["requests"])
    elapsed = int(summary["duration_us"]) / 1e6
    errors = sum(int(summary[key]) for key in ("connect", "read", "write", "status", "timeout"))
    total_bytes = int(summary["bytes"])
    bytes_per_response = total_bytes / max(responses, 1)
    # wrk's bytes include headers, chunked framing and the responses still in
    # flight when it stops (one per connection at most): every counted response
    # must have sent its whole body, and nothing may send much more.
    upper = (responses + connections) * (len(check) + 1024 + 12 * reference.events)
    if responses and not responses * len(check) <= total_bytes <= upper:
        raise RuntimeError(
            f"{name}: {bytes_per_response:.0f} bytes per response for a {len(check)}-byte body"
        )
    first, last = sampler.samples[0], sampler.samples[-1]
    cpu_s = max(last.cpu_s - first.cpu_s, 1e-9)
    cpu, wait = usage_between(first, last)
    per_s = responses / elapsed
    return Measurement(
        server=name,
        round=round_index,
        responses=responses,
        seconds=elapsed,
        responses_per_s=per_s,
        events_per_response=reference.events,
        events_per_s=per_s * reference.events,
        wrk_bytes_per_response=bytes_per_response,
        body_bytes=len(check),
        server_cpu_percent=cpu,
        server_wait_percent=wait,
        # Events per second of server CPU: what one core sustains, whatever else
        # runs on this shared machine (wall-clock rates swing with the neighbours).
        events_per_cpu_s=responses * reference.events / cpu_s,
        errors=errors,
    )


def run(
    *,
    rounds: int,
    seconds: float,
    warmup_s: float,
    connections: int,
    servers: tuple[str, ...],
    variants: dict[str, Path] | None = None,
) -> dict[str, Any]:
    variants = variants or {}
    servers = (*servers, *variants)
    references = capture_references()
    reference = references["ours"]
    payload_file = RESULTS / "throughput-payload.json"
    write_json(payload_file, reference.data)
    for kind, captured in references.items():
        logger.info(
            "reference %s: seed %d, %d tokens, %d events, %d body bytes",
            kind,
            captured.seed,
            captured.tokens,
            captured.events,
            captured.body_bytes,
        )
    measurements: list[Measurement] = []
    for round_index in range(rounds):
        # Rotate the order so no server always runs first (or last) in a round.
        order = servers[round_index % len(servers) :] + servers[: round_index % len(servers)]
        for name in order:
            result = measure(
                name,
                round_index,
                references[workload(name)],
                payload_file,
                connections=connections,
                seconds=seconds,
                warmup_s=warmup_s,
                variants=variants,
            )
            logger.info(
                "round %d %-14s %8.0f events/s %8.0f events/cpu-s (%6.1f resp/s, cpu %3.0f%%, "
                "run-queue wait %3.0f%%, errors %d)",
                round_index,
                name,
                result.events_per_s,
                result.events_per_cpu_s,
                result.responses_per_s,
                result.server_cpu_percent,
                result.server_wait_percent,
                result.errors,
            )
            measurements.append(result)
    summary = {}
    for name in servers:
        mine = [m for m in measurements if m.server == name]
        ratios = []
        cpu_ratios = []
        for round_index in range(rounds):
            raw = [m for m in measurements if m.server == "raw" and m.round == round_index]
            own = [m for m in mine if m.round == round_index]
            if raw and own:
                ratios.append(own[0].events_per_s / raw[0].events_per_s)
                cpu_ratios.append(own[0].events_per_cpu_s / raw[0].events_per_cpu_s)
        summary[name] = {
            "label": LABELS.get(name, f"ours, patched copy in {variants.get(name)}"),
            "events_per_s": statistics.median(m.events_per_s for m in mine),
            "responses_per_s": statistics.median(m.responses_per_s for m in mine),
            "server_cpu_percent": statistics.median(m.server_cpu_percent for m in mine),
            "server_wait_percent": statistics.median(m.server_wait_percent for m in mine),
            "events_per_cpu_s": statistics.median(m.events_per_cpu_s for m in mine),
            "ratio_to_raw": statistics.median(ratios) if ratios else None,
            "ratios": ratios,
            "cpu_ratio_to_raw": statistics.median(cpu_ratios) if cpu_ratios else None,
            "cpu_ratios": cpu_ratios,
            "wrk_bytes_per_response": statistics.median(m.wrk_bytes_per_response for m in mine),
            "body_bytes": mine[0].body_bytes,
            "errors": sum(m.errors for m in mine),
        }
    return {
        "reference": {
            "seed": reference.seed,
            "tokens": reference.tokens,
            "events": reference.events,
            "body_bytes": reference.body_bytes,
        },
        "workloads": {
            kind: {
                "tokens": captured.tokens,
                "events": captured.events,
                "body_bytes": captured.body_bytes,
            }
            for kind, captured in references.items()
        },
        "settings": {
            "rounds": rounds,
            "seconds": seconds,
            "warmup_s": warmup_s,
            "connections": connections,
        },
        "measurements": [asdict(m) for m in measurements],
        "summary": summary,
        "finished_at": time.time(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=6.0, help="seconds of wrk per run")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run ours from DIR (a patched copy holding backend/), e.g. to try a fix",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    servers = tuple(name for name in args.servers.split(",") if name)
    unknown = set(servers) - set(SERVERS)
    if unknown or "raw" not in servers:
        parser.error(f"servers must include raw and be among {SERVERS}")
    variants = {}
    for item in args.variant:
        name, _, directory = item.partition("=")
        if not name or not directory or name in SERVERS:
            parser.error(f"--variant wants NAME=DIR with a new NAME, got {item!r}")
        variants[name] = Path(directory).resolve()
    result = run(
        variants=variants,
        rounds=args.rounds,
        seconds=args.duration,
        warmup_s=args.warmup,
        connections=args.connections,
        servers=servers,
    )
    write_json(args.out, result)
    for name, row in result["summary"].items():
        sys.stdout.write(
            f"{name:14s} {row['events_per_s']:9.0f} events/s ({row['ratio_to_raw']:.2f}x raw)  "
            f"{row['events_per_cpu_s']:9.0f} events/cpu-s ({row['cpu_ratio_to_raw']:.2f}x raw)\n"
        )


if __name__ == "__main__":
    main()

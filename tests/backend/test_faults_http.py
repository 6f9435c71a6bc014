"""Faults survived, seen from a client of a real ``python -m backend`` process.

- The openai engine's upstream misbehaves in every way tests/backend/engines/
  upstream_faults.py knows: our client gets a clear error event and [DONE]
  within the configured timeout, the process stays healthy, and the next
  request is answered.
- A reader that never reads: the server's memory stays bounded and the other
  streams are unaffected. Why it is bounded: the hub stores each stream's
  events once, whoever reads them; a subscriber is only a cursor into them.
  A response pulls the next batch only after its previous write went out, and
  uvicorn's ``send`` waits while the socket's buffers are full (flow control),
  so a stuck reader costs one pending batch plus the kernel's socket buffers,
  never a growing queue. The stream itself stays resumable (Last-Event-ID)
  for ``stream_ttl_s`` after it ends.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.backend.engines.upstream_faults import ANSWER, FaultyUpstream
from tests.servers import HOST, ChildServer, backend_process, free_port, serve_app
from tests.whatwg_sse import parse_stream

CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
READ_TIMEOUT_S = 1.0
FIREHOSE_CHUNKS = 400
FIREHOSE_CHARS = 10_000  # 4 MB per stream: more than the kernel buffers on loopback
FIREHOSE_BODY = {**BODY, "max_tokens": 1000}  # room for every firehose chunk


class ScenarioSwitch:
    """One upstream URL whose behaviour the test picks (``scenario``), so one backend
    process can meet every fault in turn. ``firehose`` is ours: a long answer
    written as fast as the reader takes it, ignoring max_tokens."""

    def __init__(self) -> None:
        self.faults = FaultyUpstream(trickle_delay_s=0.05)
        self.scenario = "ok"

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.scenario == "firehose":
            await _firehose(receive, send)
            return
        if scope["type"] == "http":
            path = f"/{self.scenario}{scope['path']}"
            scope = {**scope, "path": path, "raw_path": path.encode()}
        await self.faults(scope, receive, send)


async def _firehose(receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    headers = [(b"content-type", b"text/event-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    text = "x" * FIREHOSE_CHARS
    for index in range(FIREHOSE_CHUNKS):
        chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        body = f"id: {index}\ndata: {json.dumps(chunk)}\n\n".encode()
        await send({"type": "http.response.body", "body": body, "more_body": True})
    last = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    tail = f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode()
    await send({"type": "http.response.body", "body": tail, "more_body": False})


@dataclass
class Setup:
    switch: ScenarioSwitch
    backend: ChildServer


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    switch = ScenarioSwitch()
    with serve_app(switch) as upstream_url:
        env = {
            "SSECHAT_ENGINE": "openai",
            "SSECHAT_UPSTREAM_URL": f"{upstream_url}/v1",
            "SSECHAT_UPSTREAM_READ_TIMEOUT_S": str(READ_TIMEOUT_S),
            "SSECHAT_UPSTREAM_CONNECT_TIMEOUT_S": "1",
            "SSECHAT_STREAM_TTL_S": "1",
        }
        with backend_process(env) as backend:
            yield Setup(switch, backend)


def stream(base_url: str, body: dict[str, Any] = BODY) -> tuple[list[Any], float]:
    """Payloads of one streamed answer (``[DONE]`` as a string), and its duration."""
    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=30) as http:
        response = http.post(CHAT, json={**body, "stream": True})
    assert response.status_code == 200, response.text
    events, _ = parse_stream(response.content)
    payloads = [
        event.data if event.data == "[DONE]" else json.loads(event.data) for event in events
    ]
    return payloads, time.monotonic() - started


def text_of(payloads: list[Any]) -> str:
    return "".join(
        (p["choices"][0]["delta"].get("content") or "")
        for p in payloads
        if isinstance(p, dict) and p.get("choices")
    )


def assert_still_healthy(base_url: str) -> None:
    assert httpx.get(f"{base_url}/healthz").json()["status"] == "ok"


FAULTS = [
    ("status-500", "upstream_server_error"),
    ("status-502-text", "upstream_server_error"),
    ("status-429", "upstream_rate_limited"),
    ("drop", "upstream_disconnected"),
    ("truncated", "upstream_incomplete"),
    ("bad_json", "upstream_malformed"),
    ("not_a_chunk", "upstream_malformed"),
    ("not_sse", "upstream_malformed"),
    ("ndjson", "upstream_malformed"),
    ("error_event", "upstream_stream_error"),
    ("stall", "upstream_timeout"),
    ("trickle", "upstream_timeout"),
]


@pytest.mark.parametrize(("scenario", "code"), FAULTS)
def test_upstream_fault_becomes_an_error_event(setup: Setup, scenario: str, code: str) -> None:
    setup.switch.scenario = scenario
    payloads, elapsed = stream(setup.backend.url)
    assert payloads[-1] == "[DONE]"
    error = payloads[-2]["error"]
    assert error["type"] == "upstream_error"
    assert error["code"] == code
    assert error["message"]
    # within the configured timeout (1 s), not the 60 s default or never
    assert elapsed < READ_TIMEOUT_S + 4
    assert_still_healthy(setup.backend.url)
    # without streaming: a 502 with the same error
    with httpx.Client(base_url=setup.backend.url, timeout=30) as http:
        whole = http.post(CHAT, json=BODY)
    assert whole.status_code == 502
    assert whole.json()["error"]["code"] == code
    # and the next request is served normally
    setup.switch.scenario = "ok"
    payloads, _ = stream(setup.backend.url)
    assert text_of(payloads) == ANSWER
    assert payloads[-2]["choices"][0]["finish_reason"] == "stop"


def test_upstream_refusing_connections() -> None:
    closed_port = free_port()  # nothing listens there
    env = {
        "SSECHAT_ENGINE": "openai",
        "SSECHAT_UPSTREAM_URL": f"http://{HOST}:{closed_port}/v1",
        "SSECHAT_UPSTREAM_CONNECT_TIMEOUT_S": "1",
    }
    with backend_process(env) as backend:
        payloads, elapsed = stream(backend.url)
        assert payloads[-1] == "[DONE]"
        assert payloads[-2]["error"]["code"] == "upstream_unreachable"
        assert elapsed < 5
        assert_still_healthy(backend.url)


# --- a reader that never reads -------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        match = re.search(r"^VmRSS:\s+(\d+) kB", status.read(), re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


def metric(base_url: str, name: str) -> float:
    text = httpx.get(f"{base_url}/metrics").text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def stuck_reader(base_url: str) -> socket.socket:
    """Send a streaming request with a tiny receive buffer, then never read."""
    port = int(base_url.rsplit(":", 1)[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((HOST, port))
    body = json.dumps({**FIREHOSE_BODY, "stream": True}).encode()
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sock.sendall(head + body)
    return sock


async def read_whole(http: httpx.AsyncClient) -> list[str]:
    async with http.stream("POST", CHAT, json={**FIREHOSE_BODY, "stream": True}) as response:
        raw = await response.aread()
    events, _ = parse_stream(raw)
    return [event.last_event_id for event in events]


@pytest.mark.slow
async def test_a_reader_that_never_reads_costs_bounded_memory(setup: Setup) -> None:
    setup.switch.scenario = "firehose"
    base_url, pid = setup.backend.url, setup.backend.process.pid
    expected_ids = [str(n) for n in range(1, FIREHOSE_CHUNKS + 4)]  # role, chunks, end, [DONE]
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:
        # warm-up: allocator pools, connection pools
        assert list(await asyncio.gather(read_whole(http), read_whole(http))) == [expected_ids] * 2
        await asyncio.sleep(1.5)  # finished streams expire (stream_ttl_s = 1)
        baseline = rss_bytes(pid)

        stuck = [stuck_reader(base_url) for _ in range(4)]
        try:
            # everyone else streams on, in full, in order, several at once
            for _ in range(2):
                results = await asyncio.gather(*(read_whole(http) for _ in range(3)))
                assert all(ids == expected_ids for ids in results)
            during = rss_bytes(pid)
            stored = metric(base_url, "ssechat_hub_buffered_bytes")
            # they really are stuck: their responses are still open on the server
            assert metric(base_url, "ssechat_streams_active") >= len(stuck)
        finally:
            for sock in stuck:
                sock.close()
    stream_bytes = FIREHOSE_CHUNKS * FIREHOSE_CHARS
    # The hub stores each stream once (the stuck ones as far as they have come, and
    # finished ones until they expire: both depend on timing, so it is read, not
    # assumed); each stuck reader holds at most one encoded batch of its stream on
    # top. Nothing grows per event or per reader beyond that.
    assert stored <= (len(stuck) + 6) * stream_bytes * 1.1  # at most every stream of the test
    # The slack is the allocator's high-water mark: the readers that finished had
    # their streams' multi-megabyte strings alive at once (upstream body, stored
    # text, encoded batch), and freed heap is not handed back to the kernel.
    bound = stored + len(stuck) * stream_bytes + 48 * 2**20
    assert during - baseline < bound, (baseline, during, stored)

    # the server notices them go (their responses close), and their streams
    # expire like any other (stream_ttl_s = 1)
    def released() -> bool:
        return (
            metric(base_url, "ssechat_streams_active") == 0
            and metric(base_url, "ssechat_hub_buffered_bytes") == 0
        )

    deadline = time.monotonic() + 10
    while not released():
        assert time.monotonic() < deadline, "stuck readers' streams were never released"
        await asyncio.sleep(0.1)
    assert_still_healthy(base_url)


def test_an_upstream_ignoring_max_tokens_is_cut_at_max_tokens(setup: Setup) -> None:
    setup.switch.scenario = "firehose"
    payloads, _ = stream(setup.backend.url, {**BODY, "max_tokens": 5})
    contents = [
        chunk["choices"][0]["delta"]["content"]
        for chunk in payloads
        if isinstance(chunk, dict)
        and chunk.get("choices")
        and chunk["choices"][0]["delta"].get("content")
    ]
    assert len(contents) == 5
    assert payloads[-1] == "[DONE]"
    assert payloads[-2]["choices"][0]["finish_reason"] == "length"

"""Hostile clients against a real ``python -m backend`` on real sockets.

Header bombs (431, the server's memory stays flat), slowloris (partial
headers trickled, silent connections: closed by the header timeout while a
normal stream on the same server goes on), trickled and stalled bodies
(408), the idle keep-alive timeout, and the connection cap (503).
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from uvicorn.server import ServerState

from backend.http.protocol import GuardedHttpProtocol, HttpLimits, ServerConfig
from tests.backend.http.raw import (
    connect,
    read_one,
    read_response,
    resident_kib,
    send_until_answered,
    status_of,
    wait_closed,
    wait_until,
)
from tests.servers import ChildServer, backend_process
from tests.whatwg_sse import parse_stream

KEY = "sk-protocol-test-7c1d"
CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hello"}]
TIMEOUT_S = 1.0  # header and body timeouts of the guarded server

GUARDED_ENV = {
    "SSECHAT_ENGINE": "simulated",
    "SSECHAT_API_KEYS": KEY,
    "SSECHAT_HEADER_TIMEOUT_S": str(TIMEOUT_S),
    "SSECHAT_BODY_TIMEOUT_S": str(TIMEOUT_S),
    "SSECHAT_KEEP_ALIVE_TIMEOUT_S": "1",
    "SSECHAT_SIM_TOKENS_PER_S": "20",
}


@pytest.fixture(scope="module")
def guarded() -> Iterator[ChildServer]:
    with backend_process(GUARDED_ENV) as server:
        yield server


def json_error(response: bytes) -> dict[str, object]:
    body = response.partition(b"\r\n\r\n")[2]
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return dict(error)


def bomb(base_url: str, header_bytes: int, path: str = "/v1/models") -> bytes:
    with connect(base_url) as sock:
        head = f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Bomb: ".encode()
        return send_until_answered(sock, head, header_bytes)


# --- header bytes ------------------------------------------------------------------------------


def test_header_bombs_get_431_before_auth_and_memory_stays_flat(guarded: ChildServer) -> None:
    pid = guarded.process.pid
    assert httpx.get(f"{guarded.url}/healthz").status_code == 200
    before = resident_kib(pid)
    big = bomb(guarded.url, 64 << 20)
    assert status_of(big) == 431
    error = json_error(big)
    assert error["code"] == "request_header_fields_too_large"
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: bomb(guarded.url, 16 << 20), range(4)))
    assert [status_of(answer) for answer in answers] == [431] * 4
    after = resident_kib(pid)
    # Unguarded, these five requests took the process from 62 MB to 1.1 GB.
    assert after - before < 16 * 1024, (before, after)
    assert httpx.get(f"{guarded.url}/healthz").status_code == 200


def test_many_headers_count_too_not_just_one_long_one(guarded: ChildServer) -> None:
    headers = b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 100) for n in range(1000))
    with connect(guarded.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        assert status_of(read_response(sock)) == 431


def test_headers_under_the_limit_pass(guarded: ChildServer) -> None:
    padding = "p" * 60_000
    response = httpx.get(
        f"{guarded.url}/v1/models", headers={"Authorization": f"Bearer {KEY}", "X-Pad": padding}
    )
    assert response.status_code == 200


# --- header timeout (slowloris) ---------------------------------------------------------------


def test_slowloris_is_dropped_while_a_stream_goes_on(guarded: ChildServer) -> None:
    """Silent and trickling connections are closed by the header timeout; a real
    stream on the same server, opened before them, completes untouched."""
    body = {"messages": MESSAGES, "stream": True, "max_tokens": 60}
    stream_raw: list[bytes] = []

    def read_stream() -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        with (
            httpx.Client(base_url=guarded.url, timeout=30, headers=headers) as client,
            client.stream("POST", CHAT, json=body) as response,
        ):
            assert response.status_code == 200
            stream_raw.append(response.read())

    reader = threading.Thread(target=read_stream)
    reader.start()
    silent = [connect(guarded.url) for _ in range(50)]
    trickling = [connect(guarded.url) for _ in range(50)]
    opened = time.monotonic()
    request = b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode()
    closed_at: dict[socket.socket, float] = {}
    position = 0
    # One byte per connection every 0.2 s: each one "makes progress", forever.
    while len(closed_at) < len(trickling) and time.monotonic() - opened < TIMEOUT_S + 5:
        for sock in trickling:
            if sock not in closed_at:
                try:
                    sock.send(request[position % len(request) : position % len(request) + 1])
                except OSError:
                    closed_at[sock] = time.monotonic() - opened
        position += 1
        readable, _, _ = select.select([s for s in trickling if s not in closed_at], [], [], 0.2)
        for sock in readable:
            answer = read_response(sock, 2.0)
            assert status_of(answer) == 408
            closed_at[sock] = time.monotonic() - opened
    assert len(closed_at) == len(trickling)
    assert max(closed_at.values()) < TIMEOUT_S + 3
    for sock in silent:
        assert wait_closed(sock, TIMEOUT_S + 3) < TIMEOUT_S + 3
    for sock in silent + trickling:
        sock.close()
    reader.join(30)
    events, _ = parse_stream(stream_raw[0])
    assert events[-1].data == "[DONE]"
    assert json.loads(events[-2].data)["choices"][0]["finish_reason"] in ("stop", "length")


def test_a_kept_alive_connection_is_closed_when_idle(guarded: ChildServer) -> None:
    with connect(guarded.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_one(sock)) == 200
        assert wait_closed(sock, 5) < 3  # SSECHAT_KEEP_ALIVE_TIMEOUT_S=1


def test_the_header_timeout_restarts_with_each_kept_alive_request(guarded: ChildServer) -> None:
    with connect(guarded.url) as sock:
        for _ in range(3):  # three requests over more than one header timeout in all
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert status_of(read_one(sock)) == 200
            time.sleep(0.5)  # the client's think time, under the keep-alive timeout
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHo")  # then stalls mid-request
        answer = read_response(sock, TIMEOUT_S + 3)
    assert status_of(answer) == 408
    assert json_error(answer)["code"] == "request_timeout"


# --- request body -----------------------------------------------------------------------------


def body_request(length: int) -> bytes:
    return (
        f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_a_stalled_body_gets_408(guarded: ChildServer) -> None:
    with connect(guarded.url) as sock:
        sock.sendall(body_request(1000) + b'{"messages": [')
        started = time.monotonic()
        answer = read_response(sock, TIMEOUT_S + 5)
        waited = time.monotonic() - started
    assert status_of(answer) == 408
    assert "not received" in str(json_error(answer)["message"])
    assert waited < TIMEOUT_S + 3


def test_a_trickled_body_gets_408(guarded: ChildServer) -> None:
    """Bytes keep coming (no silence), but far below the minimum rate."""
    with connect(guarded.url) as sock:
        sock.sendall(body_request(100_000))
        started = time.monotonic()
        answer = b""
        while not answer and time.monotonic() - started < TIMEOUT_S + 5:
            try:
                sock.send(b" ")
            except OSError:
                break
            readable, _, _ = select.select([sock], [], [], 0.1)
            if readable:
                answer = read_response(sock, 2.0)
    assert status_of(answer) == 408
    assert "slower than" in str(json_error(answer)["message"])


def test_a_body_at_normal_speed_is_served(guarded: ChildServer) -> None:
    payload = json.dumps({"messages": MESSAGES, "max_tokens": 2}).encode()
    with connect(guarded.url) as sock:
        sock.sendall(body_request(len(payload)))
        for start in range(0, len(payload), 16):  # a few small writes, promptly
            sock.sendall(payload[start : start + 16])
        assert status_of(read_one(sock)) == 200


# --- connection cap ---------------------------------------------------------------------------


def test_beyond_max_connections_requests_get_a_json_503() -> None:
    env = {"SSECHAT_ENGINE": "simulated", "SSECHAT_MAX_CONNECTIONS": "4"}
    with backend_process(env) as server:
        idle = [connect(server.url) for _ in range(4)]
        try:
            wait_until(lambda: httpx.get(f"{server.url}/healthz").status_code == 503, 5, "the cap")
            response = httpx.get(f"{server.url}/healthz")
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == "overloaded"
        finally:
            for sock in idle:
                sock.close()
        wait_until(lambda: httpx.get(f"{server.url}/healthz").status_code == 200, 5, "room")


def test_workers_serve_through_the_same_guarded_protocol(redis_url: str) -> None:
    args = ["--workers", "2", "--hub", "redis", "--redis-url", redis_url]
    with backend_process({"SSECHAT_ENGINE": "simulated"}, args) as server:
        for _ in range(4):  # whichever worker accepts
            assert status_of(bomb(server.url, 1 << 20, "/healthz")) == 431


async def _no_app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")


def test_the_protocol_keeps_its_instance_dict_shared() -> None:
    # CPython shares one key table between a class's instance dicts only while
    # they hold fewer than 30 keys; past that every connection pays for a
    # private table, so our own state lives in slots.
    config = ServerConfig(_no_app, limits=HttpLimits())
    config.load()
    loop = asyncio.new_event_loop()
    try:
        protocol = GuardedHttpProtocol(config, ServerState(), {}, loop)
        protocol.on_message_begin()
        assert len(vars(protocol)) < 30
        assert protocol.limits == HttpLimits()
    finally:
        loop.close()

"""Graceful shutdown: every live stream ends with a final event, then the process exits 0.

uvicorn alone would wait for the streams' connections to close (they do not
until their generations finish) and then cut them; ``backend.__main__``'s
``DrainingServer`` ends the streams first. These tests use real processes and
real signals, and an in-thread server for the parts a signal cannot time
(requests arriving while the streams drain).
"""

from __future__ import annotations

import asyncio
import gc
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from backend.app import SHUTDOWN_HOOK, create_app
from backend.config import Settings
from backend.serving import DrainingServer
from tests.backend.http.raw import metric, wait_until
from tests.redis_server import run_redis_server
from tests.servers import backend_process
from tests.whatwg_sse import parse_stream

CHAT = "/v1/chat/completions"
LONG = {"messages": [{"role": "user", "content": "tell me everything"}], "max_tokens": 4000}


async def open_stream(
    http: httpx.AsyncClient, started: asyncio.Event, body: dict[str, Any] = LONG
) -> tuple[str, bytes]:
    """Read one stream to its end; set ``started`` once three events have arrived."""
    raw = b""
    async with http.stream("POST", CHAT, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        stream_id = response.headers["x-stream-id"]
        async for piece in response.aiter_bytes():
            raw += piece
            if raw.count(b"\n\n") >= 3:
                started.set()
    return stream_id, raw


def assert_ended_by_shutdown(raw: bytes) -> None:
    events, _ = parse_stream(raw)
    assert [event.last_event_id for event in events] == [str(n) for n in range(1, len(events) + 1)]
    assert events[-1].data == "[DONE]"
    final = json.loads(events[-2].data)
    assert final["choices"][0]["finish_reason"] == "cancelled"


async def test_sigterm_ends_every_stream_then_exits_0() -> None:
    # 5 tokens/s: a simulated answer (40+ tokens) outlasts the 5 s connection timeout,
    # so only the drain can end these streams with a final event in time.
    env = {"SSECHAT_ENGINE": "simulated", "SSECHAT_SIM_TOKENS_PER_S": "5"}
    with backend_process(env) as backend:
        async with httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
            started = [asyncio.Event(), asyncio.Event()]
            readers = [asyncio.create_task(open_stream(http, event)) for event in started]
            async with asyncio.timeout(10):
                for event in started:
                    await event.wait()
            signalled = time.monotonic()
            backend.process.terminate()  # SIGTERM
            async with asyncio.timeout(10):
                results = await asyncio.gather(*readers)
        for _stream_id, raw in results:
            assert_ended_by_shutdown(raw)
        status = await asyncio.to_thread(backend.process.wait, 10)
        elapsed = time.monotonic() - signalled
        log = backend.log()
    assert status == 0, log
    assert elapsed < 8, log  # well under the 5 s connection timeout + startup slack
    assert "shutting down: ending every live stream" in log
    # nothing was force-cancelled: the streams ended on their own, before the timeout
    assert "timeout graceful shutdown exceeded" not in log
    assert "Traceback" not in log


def test_sigterm_when_idle_exits_0() -> None:
    with backend_process({"SSECHAT_ENGINE": "simulated"}) as backend:
        assert backend.terminate() == 0


async def test_sigterm_with_a_non_stream_request_in_flight_exits_without_traceback() -> None:
    """A ``stream: false`` request outliving the shutdown timeout: its connection is
    closed at the deadline, so the request ends as if its client had left (the
    generation is cancelled) instead of its task being cancelled with a traceback."""
    env = {
        "SSECHAT_ENGINE": "simulated",
        "SSECHAT_SIM_TOKENS_PER_S": "5",
        "SSECHAT_SIM_FILL_MAX_TOKENS": "true",
        "SSECHAT_SHUTDOWN_TIMEOUT_S": "1",
        "SSECHAT_MAX_CONCURRENT_STREAMS_PER_KEY": "10",  # so /metrics counts its slot
    }
    with backend_process(env) as backend:
        async with httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
            request = asyncio.create_task(http.post(CHAT, json=LONG))
            slot_held = lambda: metric(backend.url, "ssechat_stream_slots_held") == 1  # noqa: E731
            await asyncio.to_thread(wait_until, slot_held, 10, "the request's slot")
            signalled = time.monotonic()
            backend.process.terminate()
            with pytest.raises(httpx.RemoteProtocolError):
                await request  # no answer: the server closed the connection
        status = await asyncio.to_thread(backend.process.wait, 10)
        elapsed = time.monotonic() - signalled
        log = backend.log()
    assert status == 0, log
    assert elapsed < 5, log  # the 1 s timeout, one more for requests to end, slack
    assert "Closing 1 connection(s) still open" in log
    assert "Traceback" not in log, log
    assert "CancelledError" not in log, log


@pytest.fixture
def draining_server() -> Iterator[tuple[str, DrainingServer]]:
    """A ``DrainingServer`` in a thread (signals go to the main thread only, so the
    test calls the server's hook, or ``handle_exit``, itself)."""
    settings = Settings(engine="simulated", sim_tokens_per_s=5.0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(settings), log_level="warning", timeout_graceful_shutdown=3)
    server = DrainingServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_started_server_freezes_what_startup_built_out_of_the_gc(
    draining_server: tuple[str, DrainingServer],
) -> None:
    # Process-wide, so this only shows the server froze something once started:
    # the full collections it then spares the streams are in docs/BENCHMARKS.md.
    wait_until(lambda: gc.get_freeze_count() > 0, 10, "the startup objects frozen")


async def test_drain_refuses_new_streams_and_resume_still_replays(
    draining_server: tuple[str, DrainingServer],
) -> None:
    base_url, server = draining_server
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        started = asyncio.Event()
        reader = asyncio.create_task(open_stream(http, started))
        async with asyncio.timeout(10):
            await started.wait()
        hook = server.lifespan.state[SHUTDOWN_HOOK]
        assert server._loop is not None
        drained = asyncio.run_coroutine_threadsafe(hook(), server._loop)
        async with asyncio.timeout(10):
            stream_id, raw = await reader
        await asyncio.wrap_future(drained)
        assert_ended_by_shutdown(raw)

        refused = await http.post(CHAT, json={**LONG, "stream": True})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "shutting_down"
        # a client that lost the end can still fetch it while the server drains
        resumed = await http.get(f"{CHAT}/{stream_id}/events", headers={"Last-Event-ID": "2"})
        assert resumed.status_code == 200
        assert parse_stream(resumed.content)[0] == parse_stream(raw)[0][2:]


async def test_handle_exit_drains_before_closing_connections(
    draining_server: tuple[str, DrainingServer],
) -> None:
    """What SIGTERM does, called directly: the stream ends with its final event
    although the connection timeout (3 s) has not passed."""
    base_url, server = draining_server
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        started = asyncio.Event()
        reader = asyncio.create_task(open_stream(http, started))
        async with asyncio.timeout(10):
            await started.wait()
        server.handle_exit(15, None)
        async with asyncio.timeout(10):
            _stream_id, raw = await reader
    assert_ended_by_shutdown(raw)


# --- with the redis hub -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with run_redis_server() as server:
        yield server.url


def redis_env(redis_url: str) -> dict[str, str]:
    return {
        "SSECHAT_ENGINE": "simulated",
        "SSECHAT_SIM_TOKENS_PER_S": "5",
        "SSECHAT_HUB": "redis",
        "SSECHAT_REDIS_URL": redis_url,
    }


@pytest.mark.redis
async def test_sigterm_with_workers_ends_every_stream_then_exits_0(redis_url: str) -> None:
    with backend_process(redis_env(redis_url), ["--workers", "2"]) as backend:
        async with httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
            started = [asyncio.Event() for _ in range(4)]
            readers = [asyncio.create_task(open_stream(http, event)) for event in started]
            async with asyncio.timeout(15):
                for event in started:
                    await event.wait()
            backend.process.terminate()  # the supervisor forwards it to each worker
            async with asyncio.timeout(15):
                results = await asyncio.gather(*readers)
        for _stream_id, raw in results:
            assert_ended_by_shutdown(raw)
        status = await asyncio.to_thread(backend.process.wait, 15)
        log = backend.log()
    assert status == 0, log
    assert log.count("shutting down: ending every live stream") == 2  # both workers drained
    assert "timeout graceful shutdown exceeded" not in log


@pytest.mark.redis
async def test_a_stream_ended_by_shutdown_resumes_on_another_replica(redis_url: str) -> None:
    with (
        backend_process(redis_env(redis_url)) as leaving,
        backend_process(redis_env(redis_url)) as staying,
    ):
        async with httpx.AsyncClient(timeout=30) as http:
            started = asyncio.Event()
            leaving_http = httpx.AsyncClient(base_url=leaving.url, timeout=30)
            async with leaving_http:
                reader = asyncio.create_task(open_stream(leaving_http, started))
                async with asyncio.timeout(10):
                    await started.wait()
                leaving.process.terminate()
                async with asyncio.timeout(10):
                    stream_id, raw = await reader
            assert await asyncio.to_thread(leaving.process.wait, 10) == 0
            assert_ended_by_shutdown(raw)
            # the other replica has the whole stream, ending included
            resumed = await http.get(
                f"{staying.url}{CHAT}/{stream_id}/events", headers={"Last-Event-ID": "1"}
            )
        assert resumed.status_code == 200
        assert parse_stream(resumed.content)[0] == parse_stream(raw)[0][1:]

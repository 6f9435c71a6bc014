"""Resume, cancel and Redis outages over HTTP, against real servers on real sockets.

In-process uvicorn (``tests.servers.serve_app``) for the chaos runs, and
``python -m backend`` processes sharing one Redis for everything that is
about several workers. Clients are httpx + httpx-sse, as the UI's.
"""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource

from backend.app import create_app
from backend.config import Settings
from tests.redis_server import RedisServer
from tests.servers import REPO_ROOT, backend_process, free_port, serve_app

CHAT = "/v1/chat/completions"
DONE = "[DONE]"


def request_body(seed: int, max_tokens: int = 100) -> dict[str, Any]:
    return {
        "messages": [{"role": "user", "content": "Why resume a stream?"}],
        "stream": True,
        "seed": seed,
        "max_tokens": max_tokens,
    }


@dataclass(frozen=True)
class Event:
    id: int | None  # None: an event sent without an id (an in-band error)
    data: str


class SSEReader:
    """The events of one open SSE response, read in steps through one iterator."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.read()
        self._events = EventSource(response).iter_sse()
        self._last_id = ""

    def read(self, limit: int | None = None) -> list[Event]:
        """Up to ``limit`` more events (all of them when ``None``: until the server ends)."""
        events: list[Event] = []
        while limit is None or len(events) < limit:
            sse = next(self._events, None)
            if sse is None:
                break
            if not sse.data and sse.event == "message":
                continue  # httpx-sse's empty event after a comment (its issue #35)
            # httpx-sse reports the last id seen, even for an event without its own.
            own_id = sse.id != self._last_id
            events.append(Event(int(sse.id) if own_id else None, sse.data))
            self._last_id = sse.id
        return events


def read_events(response: httpx.Response, limit: int | None = None) -> list[Event]:
    """Events of a response the caller drops after ``limit`` of them."""
    return SSEReader(response).read(limit)


def text_of(events: list[Event]) -> str:
    parts = []
    for event in events:
        if event.data != DONE:
            for choice in json.loads(event.data).get("choices", ()):
                parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


def finish_reason(events: list[Event]) -> str | None:
    for event in reversed(events):
        if event.data != DONE:
            choices = json.loads(event.data).get("choices") or [{}]
            if choices[0].get("finish_reason"):
                return str(choices[0]["finish_reason"])
    return None


def assert_numbered(events: list[Event]) -> None:
    assert [event.id for event in events] == list(range(1, len(events) + 1))
    assert events[-1].data == DONE


def metric(client: httpx.Client, base_url: str, series: str) -> float:
    text = client.get(f"{base_url}/metrics").text
    match = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def run_with_cuts(
    client: httpx.Client, base_url: str, seed: int, cuts: list[int], *, max_tokens: int = 100
) -> list[Event]:
    """Start a stream; drop the connection after ``cuts[i]`` events in all, resume each time."""
    events: list[Event] = []
    limits = [*cuts, None]
    with client.stream(
        "POST", f"{base_url}{CHAT}", json=request_body(seed, max_tokens)
    ) as response:
        stream_id = response.headers["x-stream-id"]
        events += read_events(response, limits[0])
    for limit in limits[1:]:
        headers = {"Last-Event-ID": str(events[-1].id)}
        url = f"{base_url}{CHAT}/{stream_id}/events"
        with client.stream("GET", url, headers=headers) as response:
            events += read_events(response, None if limit is None else limit - len(events))
    return events


# -- chaos resume, both hubs ------------------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def api_url(request: pytest.FixtureRequest) -> Iterator[str]:
    store = {"redis_url": request.getfixturevalue("redis_url")} if request.param == "redis" else {}
    settings = Settings(
        engine="simulated",
        sim_tokens_per_s=300.0,
        hub=request.param,
        resume_grace_s=5.0,
        keepalive_s=1.0,
        **store,
    )
    with serve_app(create_app(settings)) as url:
        yield url


def test_chaos_resume_is_byte_identical(api_url: str) -> None:
    rng = random.Random(20240613)
    with httpx.Client(timeout=30) as client:
        for seed in (1, 2):
            uncut = run_with_cuts(client, api_url, seed, [])
            assert_numbered(uncut)
            total = len(uncut)
            for _trial in range(8):
                cuts = sorted(rng.sample(range(1, total), rng.randint(1, 3)))
                events = run_with_cuts(client, api_url, seed, cuts)
                assert_numbered(events)  # contiguous ids, no duplicate, nothing missing
                assert len(events) == total, cuts
                assert text_of(events) == text_of(uncut), cuts
                assert finish_reason(events) == finish_reason(uncut)


def test_unknown_stream_is_404(api_url: str) -> None:
    with httpx.Client(timeout=30) as client:
        response = client.get(f"{api_url}{CHAT}/chatcmpl-nope/events")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found"
        assert client.post(f"{api_url}{CHAT}/chatcmpl-nope/cancel").status_code == 404


# -- several workers on one Redis -------------------------------------------------------------


def redis_env(redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "SSECHAT_HUB": "redis",
        "SSECHAT_REDIS_URL": redis_url,
        "SSECHAT_ENGINE": "simulated",
        "SSECHAT_SIM_TOKENS_PER_S": "20",
        "SSECHAT_KEEPALIVE_S": "1",
        **extra,
    }


@pytest.mark.redis
def test_start_on_a_resume_and_cancel_on_b(redis_url: str) -> None:
    env = redis_env(redis_url)
    with backend_process(env) as a, backend_process(env) as b, httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{a.url}{CHAT}", json=request_body(5, 400)) as response:
            stream_id = response.headers["x-stream-id"]
            head = read_events(response, 3)
        with client.stream(
            "GET", f"{b.url}{CHAT}/{stream_id}/events", headers={"Last-Event-ID": "3"}
        ) as response:
            reader = SSEReader(response)
            middle = reader.read(2)
            cancelled = client.post(f"{b.url}{CHAT}/{stream_id}/cancel")
            assert cancelled.status_code == 200
            assert cancelled.json()["cancelled"] is True
            tail = reader.read()
        events = head + middle + tail
        assert_numbered(events)
        assert finish_reason(events) == "cancelled"
        # A ran the generation, so A stopped its engine; B only relayed.
        series = 'ssechat_cancellations_total{reason="cancelled"}'
        assert metric(client, a.url, series) == 1
        assert metric(client, b.url, series) == 0
        # The uncut answer is longer: the stream did end early.
        reference = client.post(
            f"{b.url}{CHAT}", json={**request_body(5, 400), "stream": False}
        ).json()
        full_text = reference["choices"][0]["message"]["content"]
        assert full_text.startswith(text_of(events))
        assert len(full_text) > len(text_of(events))
        # Replay on A: everything B saw.
        with client.stream("GET", f"{a.url}{CHAT}/{stream_id}/events") as response:
            assert read_events(response) == events


@pytest.mark.redis
@pytest.mark.slow
def test_a_dead_worker_s_stream_ends_with_an_error_elsewhere(redis_url: str) -> None:
    env = redis_env(redis_url, SSECHAT_KEEPALIVE_S="0.5")
    with backend_process(env) as a, backend_process(env) as b, httpx.Client(timeout=30) as client:
        with client.stream("POST", f"{a.url}{CHAT}", json=request_body(6, 1000)) as response:
            stream_id = response.headers["x-stream-id"]
            head = read_events(response, 2)
        with client.stream(
            "GET", f"{b.url}{CHAT}/{stream_id}/events", headers={"Last-Event-ID": "2"}
        ) as response:
            reader = SSEReader(response)
            head += reader.read(1)
            a.process.kill()  # no shutdown: the generation's worker just vanishes
            a.process.wait()
            tail = reader.read()
        events = head + tail
        assert_numbered(events)
        error = json.loads(events[-2].data)["error"]
        assert error["type"] == "server_error"
        assert "stopped" in error["message"]


@pytest.mark.redis
def test_two_uvicorn_workers_share_streams(redis_url: str) -> None:
    env = redis_env(redis_url, SSECHAT_SIM_TOKENS_PER_S="200")
    rng = random.Random(7)
    with backend_process(env, ["--workers", "2"]) as server:
        with httpx.Client(timeout=30) as client:
            assert client.get(f"{server.url}/healthz").json()["hub"] == "redis"
            uncut = run_with_cuts(client, server.url, 9, [])
        for _trial in range(6):
            # A fresh connection for every request: the two workers take turns accepting.
            with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as c:
                cuts = sorted(rng.sample(range(1, len(uncut)), 2))
                events = run_with_cuts(c, server.url, 9, cuts)
            assert_numbered(events)
            assert text_of(events) == text_of(uncut)


def test_several_workers_with_the_memory_hub_refuse_to_start() -> None:
    command = [sys.executable, "-m", "backend", "--workers", "2", "--hub", "memory"]
    command += ["--port", str(free_port())]
    result = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers > 1 needs the redis hub" in result.stderr


# -- Redis outage -------------------------------------------------------------------------------


@pytest.mark.redis
def test_redis_outage_mid_stream_errors_readers_elsewhere_only_then_service_recovers(
    own_redis_server: RedisServer,
) -> None:
    settings = Settings(
        engine="simulated",
        sim_tokens_per_s=20.0,
        hub="redis",
        redis_url=own_redis_server.url,
        keepalive_s=1.0,
    )
    with (
        serve_app(create_app(settings)) as a,
        serve_app(create_app(settings)) as b,
        httpx.Client(timeout=30) as client,
    ):
        reference = client.post(f"{a}{CHAT}", json={**request_body(3, 60), "stream": False})
        full_text = reference.json()["choices"][0]["message"]["content"]
        with client.stream("POST", f"{a}{CHAT}", json=request_body(3, 60)) as response:
            stream_id = response.headers["x-stream-id"]
            local = SSEReader(response)
            head = local.read(3)
            url = f"{b}{CHAT}/{stream_id}/events"
            with client.stream("GET", url, headers={"Last-Event-ID": "3"}) as resumed:
                elsewhere = SSEReader(resumed)
                assert [event.id for event in elsewhere.read(1)] == [4]
                own_redis_server.stop()
                tail = elsewhere.read()  # must end by itself
            # The reader on B is told: an error event (not in the stream's
            # numbering), then [DONE].
            assert tail[-1].data == DONE
            error = json.loads(tail[-2].data)["error"]
            assert error["type"] == "hub_unavailable"
            assert tail[-2].id is None
            # The reader on A, the stream's worker, reads its memory: all of it.
            events = head + local.read()
        assert_numbered(events)
        assert finish_reason(events) in {"stop", "length"}
        assert text_of(events) == full_text
        refused = client.post(f"{a}{CHAT}", json=request_body(3))
        assert refused.status_code == 503
        assert refused.json()["error"]["type"] == "hub_unavailable"
        assert refused.headers["retry-after"] == "1"
        own_redis_server.start()
        with client.stream("POST", f"{b}{CHAT}", json=request_body(4, 30)) as response:
            events = read_events(response)
        assert_numbered(events)
        assert finish_reason(events) in {"stop", "length"}


# -- resume at and beyond the end ------------------------------------------------------------


def resume_status(client: httpx.Client, url: str, last_event_id: int) -> tuple[int, list[Event]]:
    with client.stream("GET", url, headers={"Last-Event-ID": str(last_event_id)}) as response:
        if response.status_code == 204:
            return 204, []
        return response.status_code, read_events(response)


def test_resume_after_the_final_event_is_204_and_ahead_waits(api_url: str) -> None:
    with httpx.Client(timeout=30) as client:
        uncut = run_with_cuts(client, api_url, 11, [], max_tokens=20)
        with client.stream("POST", f"{api_url}{CHAT}", json=request_body(11, 20)) as response:
            stream_id = response.headers["x-stream-id"]
            read_events(response, 1)
        url = f"{api_url}{CHAT}/{stream_id}/events"
        # Ahead of the live stream: only ids after the one claimed, then the end.
        status, ahead = resume_status(client, url, 5)
        assert status == 200
        assert [event.id for event in ahead] == list(range(6, len(uncut) + 1))
        assert [event.data for event in ahead][-1] == DONE
        # After the final event, or ahead of a stream that ended first: 204.
        assert resume_status(client, url, len(uncut))[0] == 204
        assert resume_status(client, url, len(uncut) + 50)[0] == 204


@pytest.mark.redis
def test_resume_on_another_worker_ahead_of_a_stream_that_ends_first_is_204(
    redis_url: str,
) -> None:
    settings = Settings(engine="simulated", sim_tokens_per_s=40.0, hub="redis", redis_url=redis_url)
    with (
        serve_app(create_app(settings)) as a,
        serve_app(create_app(settings)) as b,
        httpx.Client(timeout=30) as client,
    ):
        with client.stream("POST", f"{a}{CHAT}", json=request_body(12, 20)) as response:
            stream_id = response.headers["x-stream-id"]
            reader = SSEReader(response)
            events = reader.read(2)
            url = f"{b}{CHAT}/{stream_id}/events"
            # Claims an id the stream never reaches: waits on B, then 204.
            assert resume_status(client, url, 500)[0] == 204
            events += reader.read()
        assert_numbered(events)
        assert resume_status(client, url, len(events))[0] == 204
        status, tail = resume_status(client, url, len(events) - 3)
        assert status == 200
        assert tail == events[-3:]

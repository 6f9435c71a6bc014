"""Requests per minute and concurrent generations per caller → 429 with Retry-After.

In-process limits with the memory hub; with the redis hub the counts live in
Redis, so two app instances (workers, replicas) share them, and a worker that
dies holding slots frees them when their lease runs out.
"""

from __future__ import annotations

import asyncio
import re
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from backend.app import create_app
from backend.config import Settings
from backend.errors import APIError
from backend.limits.memory import MemoryLimits
from backend.limits.redis import RedisLimits
from tests.backend.fault_engines import FailingEngine
from tests.redis_server import RedisServer, run_redis_server
from tests.servers import REPO_ROOT, serve_app
from tests.whatwg_sse import parse_stream

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "hello"}]
KEY_A = "sk-alice-4f9c2a7e1b"
KEY_B = "sk-bob-8d3e6c0a52"
SMALL = {"messages": MESSAGES, "max_tokens": 2}
LONG_STREAM = {"messages": MESSAGES, "max_tokens": 500, "stream": True}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "engine": "simulated",
        "sim_tokens_per_s": 0.0,
        "api_keys": f"{KEY_A},{KEY_B}",
    }
    values.update(overrides)
    return Settings(**values)


def metric(base_url: str, name: str, key: str = KEY_A) -> float:
    text = httpx.get(f"{base_url}/metrics", headers=bearer(key)).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def assert_rate_limited(response: httpx.Response, code: str) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["retry-after"]) <= 60
    error = response.json()["error"]
    assert error["type"] == "requests"
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}


# --- requests per minute -------------------------------------------------------------------


def test_requests_per_minute_per_key() -> None:
    with serve_app(create_app(settings(rate_limit_per_min=3))) as base_url:
        for _ in range(3):
            assert httpx.post(base_url + CHAT, json=SMALL, headers=bearer(KEY_A)).status_code == 200
        refused = httpx.post(base_url + CHAT, json=SMALL, headers=bearer(KEY_A))
        assert_rate_limited(refused, "rate_limit_exceeded")
        assert refused.headers["x-ratelimit-limit-requests"] == "3"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        # streaming counts the same
        streamed = httpx.post(
            base_url + CHAT, json={**SMALL, "stream": True}, headers=bearer(KEY_A)
        )
        assert_rate_limited(streamed, "rate_limit_exceeded")
        # another key has its own budget
        assert httpx.post(base_url + CHAT, json=SMALL, headers=bearer(KEY_B)).status_code == 200
        # only generations count: the rest of the API stays usable
        for _ in range(5):
            assert httpx.get(f"{base_url}/v1/models", headers=bearer(KEY_A)).status_code == 200


def test_open_api_limits_each_client_address() -> None:
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 (its default forwarded_allow_ips),
    # which lets one test client speak for several addresses.
    with serve_app(create_app(settings(api_keys="", rate_limit_per_min=2))) as base_url:

        def post(address: str) -> httpx.Response:
            return httpx.post(base_url + CHAT, json=SMALL, headers={"X-Forwarded-For": address})

        assert post("203.0.113.7").status_code == 200
        assert post("203.0.113.7").status_code == 200
        assert_rate_limited(post("203.0.113.7"), "rate_limit_exceeded")
        assert post("198.51.100.4").status_code == 200


async def test_windows_are_whole_minutes() -> None:
    now = [600.0]
    limits = MemoryLimits(per_minute=2, max_concurrent=0, clock=lambda: now[0])
    await limits.check_rate("key:a")
    now[0] = 659.2
    await limits.check_rate("key:a")
    with pytest.raises(APIError) as refused:
        await limits.check_rate("key:a")
    assert refused.value.status_code == 429
    assert refused.value.headers is not None
    assert refused.value.headers["Retry-After"] == "1"  # 0.8 s left, rounded up
    await limits.check_rate("key:b")  # per caller
    now[0] = 660.0  # a new window
    await limits.check_rate("key:a")
    await limits.check_rate("key:a")


# --- concurrent generations ----------------------------------------------------------------


def test_concurrent_streams_are_capped_per_key() -> None:
    app = create_app(settings(max_concurrent_streams_per_key=2, sim_tokens_per_s=10.0))
    with (
        serve_app(app) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as http,
        ExitStack() as streams,
    ):
        ids = []
        for _ in range(2):
            response = streams.enter_context(
                http.stream("POST", CHAT, json=LONG_STREAM, headers=bearer(KEY_A))
            )
            assert response.status_code == 200
            ids.append(response.headers["x-stream-id"])
        assert metric(base_url, "ssechat_stream_slots_held") == 2
        third = http.post(CHAT, json=LONG_STREAM, headers=bearer(KEY_A))
        assert_rate_limited(third, "concurrent_streams_exceeded")
        assert third.headers["retry-after"] == "1"
        # a non-streaming generation is a generation too
        assert_rate_limited(
            http.post(CHAT, json=SMALL, headers=bearer(KEY_A)), "concurrent_streams_exceeded"
        )
        assert http.post(CHAT, json=SMALL, headers=bearer(KEY_B)).status_code == 200
        # cancelling one frees its slot at once (cancel returns once the stream ended)
        assert http.post(f"{CHAT}/{ids[0]}/cancel", headers=bearer(KEY_A)).status_code == 200
        assert http.post(CHAT, json=SMALL, headers=bearer(KEY_A)).status_code == 200
    wait_for(lambda: app.state.limits.held_slots == 0)


def test_the_slot_follows_the_generation_not_the_connection() -> None:
    """A client that drops and resumes keeps its one slot; the slot frees when the
    generation ends, not when a response does."""
    app = create_app(
        settings(max_concurrent_streams_per_key=1, sim_tokens_per_s=40.0, resume_grace_s=30.0)
    )
    with serve_app(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        with http.stream("POST", CHAT, json=LONG_STREAM, headers=bearer(KEY_A)) as response:
            stream_id = response.headers["x-stream-id"]
            for line in response.iter_lines():
                if line == "id: 2":
                    break
        # disconnected: the generation runs on (resume grace), holding the slot
        assert_rate_limited(
            http.post(CHAT, json=SMALL, headers=bearer(KEY_A)), "concurrent_streams_exceeded"
        )
        # resuming takes no second slot, and reads to the end
        resumed = http.get(
            f"{CHAT}/{stream_id}/events", headers={**bearer(KEY_A), "Last-Event-ID": "2"}
        )
        assert resumed.status_code == 200
        events, _ = parse_stream(resumed.content)
        assert events[0].last_event_id == "3"
        assert events[-1].data == "[DONE]"
        # finished: the slot is free although nobody cancelled anything
        wait_for(lambda: app.state.limits.held_slots == 0)
        assert http.post(CHAT, json=SMALL, headers=bearer(KEY_A)).status_code == 200


def test_abandoned_and_failed_generations_free_their_slots() -> None:
    app = create_app(
        settings(max_concurrent_streams_per_key=1, sim_tokens_per_s=20.0, resume_grace_s=0.0),
        extra_engines=[FailingEngine("failing", tokens_before_failure=2, crash=False)],
    )
    with serve_app(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        with http.stream("POST", CHAT, json=LONG_STREAM, headers=bearer(KEY_A)) as response:
            for line in response.iter_lines():
                if line == "id: 2":
                    break
        # grace 0: abandoned at once when the reader left
        wait_for(lambda: app.state.limits.held_slots == 0)
        failing = {**LONG_STREAM, "model": "failing"}
        raw = http.post(CHAT, json=failing, headers=bearer(KEY_A)).content
        assert b"model backend went away" in raw
        wait_for(lambda: app.state.limits.held_slots == 0)
        assert http.post(CHAT, json=SMALL, headers=bearer(KEY_A)).status_code == 200


def test_a_refused_start_does_not_keep_the_slot() -> None:
    """A generation the hub refuses (503, at capacity) must not keep the slot it took."""
    app = create_app(
        settings(max_concurrent_streams_per_key=1, max_streams=1, sim_tokens_per_s=10.0)
    )
    with serve_app(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        with http.stream("POST", CHAT, json=LONG_STREAM, headers=bearer(KEY_B)) as live:
            # the hub's one place is taken by a live stream: A is refused by the hub
            full = http.post(CHAT, json=LONG_STREAM, headers=bearer(KEY_A))
            assert full.status_code == 503
            assert app.state.limits.held_slots == 1  # B's, not A's
            cancel = f"{CHAT}/{live.headers['x-stream-id']}/cancel"
            assert http.post(cancel, headers=bearer(KEY_B)).status_code == 200
        # room again (the finished stream is evicted), and A's slot was given back
        assert http.post(CHAT, json={**SMALL, "stream": True}, headers=bearer(KEY_A)).is_success


# --- shared through Redis ------------------------------------------------------------------


@pytest.mark.redis
def test_limits_are_shared_by_every_worker(redis_url: str) -> None:
    config = settings(
        hub="redis",
        redis_url=redis_url,
        rate_limit_per_min=4,
        max_concurrent_streams_per_key=2,
        sim_tokens_per_s=10.0,
    )
    one, two = create_app(config), create_app(config)
    with (
        serve_app(one) as url_one,
        serve_app(two) as url_two,
        httpx.Client(timeout=30) as http,
        ExitStack() as streams,
    ):
        # two generations, one per worker: the cap (2) is reached across workers
        ids = []
        for url in (url_one, url_two):
            response = streams.enter_context(
                http.stream("POST", url + CHAT, json=LONG_STREAM, headers=bearer(KEY_A))
            )
            assert response.status_code == 200
            ids.append(response.headers["x-stream-id"])
        for url in (url_one, url_two):
            refused = http.post(url + CHAT, json=SMALL, headers=bearer(KEY_A))
            assert_rate_limited(refused, "concurrent_streams_exceeded")
        # 4 requests counted so far across both: the fifth is over the minute's budget
        refused = http.post(url_two + CHAT, json=SMALL, headers=bearer(KEY_A))
        assert_rate_limited(refused, "rate_limit_exceeded")
        # key B is untouched by all of that
        assert http.post(url_one + CHAT, json=SMALL, headers=bearer(KEY_B)).status_code == 200
        # worker two cancels worker one's stream: its slot frees for everyone
        assert http.post(f"{url_two}{CHAT}/{ids[0]}/cancel", headers=bearer(KEY_A)).is_success
        wait_for(lambda: one.state.limits.held_slots == 0)
    wait_for(lambda: two.state.limits.held_slots == 0)


_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from backend.limits.redis import RedisLimits

    async def main() -> None:
        limits = await RedisLimits.connect(
            redis_url=sys.argv[1], per_minute=0, max_concurrent=2,
            slot_ttl_s=float(sys.argv[2]),
        )
        await limits.acquire_stream("key:shared")
        await limits.acquire_stream("key:shared")
        print("held", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.redis
@pytest.mark.slow
async def test_a_crashed_worker_cannot_leak_slots(redis_url: str) -> None:
    ttl_s = 1.0
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _HOLDER,
        redis_url,
        str(ttl_s),
        cwd=REPO_ROOT,
        env={"PYTHONPATH": str(REPO_ROOT)},
        stdout=asyncio.subprocess.PIPE,
    )
    limits = RedisLimits(redis_url=redis_url, per_minute=0, max_concurrent=2, slot_ttl_s=ttl_s)
    try:
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"held\n"
        # alive: it renews its leases, so the slots stay taken well past one TTL
        deadline = time.monotonic() + 3 * ttl_s
        while time.monotonic() < deadline:
            with pytest.raises(APIError) as refused:
                await limits.acquire_stream("key:shared")
            assert refused.value.status_code == 429
            await asyncio.sleep(0.2)
        holder.kill()  # SIGKILL: no release, no goodbye
        await holder.wait()
        killed = time.monotonic()
        while True:
            try:
                slot = await limits.acquire_stream("key:shared")
                break
            except APIError:
                assert time.monotonic() - killed < 5 * ttl_s, "slots leaked past their lease"
                await asyncio.sleep(0.1)
        slot.release()
    finally:
        if holder.returncode is None:
            holder.kill()
            await holder.wait()
        await limits.aclose()


@pytest.mark.redis
async def test_redis_away_is_a_503_not_a_crash(own_redis: RedisServer) -> None:
    limits = RedisLimits(redis_url=own_redis.url, per_minute=5, max_concurrent=1, slot_ttl_s=1.0)
    try:
        slot = await limits.acquire_stream("key:a")
        own_redis.stop()
        for call in (limits.check_rate("key:a"), limits.acquire_stream("key:a")):
            with pytest.raises(APIError) as unavailable:
                await call
            assert unavailable.value.status_code == 503
            assert unavailable.value.code == "rate_limiter_unavailable"
        slot.release()  # logged, not raised: the lease would expire on its own
        own_redis.start()
        await limits.check_rate("key:a")
    finally:
        await limits.aclose()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with run_redis_server() as server:
        yield server

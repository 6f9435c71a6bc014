"""Disconnect storms: many clients start streams and leave at once; compute is freed.

1,000 streams on the memory hub (one worker) and 300 on the Redis hub (two
workers) are started over raw sockets, each read until its first event,
then all closed together. Every response must notice and detach from the
hub, then every generation stop within the resume grace period plus 1 s
(plus, with two workers, how stale another worker's published figures may
be), each counted as cancelled and abandoned, every slot be released, and
the server be back to the tasks it had before. Observed through
``/metrics`` only: open responses, live generations, held slots, asyncio
tasks, and how the generations ended.

How long the detaching takes depends on the machine's load (300 Redis
round trips on a shared 2-core machine can take seconds), so its deadline is
loose; ``python -m bench.reliability`` measures the whole time from the drop,
for docs/BENCHMARKS.md. A response that never notices its client left, or a
generation freed only when a Redis reader's lease lapses, still fails.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from backend.metrics.shared import PUBLISH_S
from tests.backend.http.raw import address, wait_until
from tests.backend.scrape import scrape
from tests.servers import backend_process

CHAT = "/v1/chat/completions"
GRACE_S = 1.0
DETACH_DEADLINE_S = 10.0
SIM = {"dialect": "chat_completions", "engine": "simulated"}
ENV = {
    "SSECHAT_ENGINE": "simulated",
    # 1,000 tokens at 1 a second: only a cancellation ends these generations in time.
    "SSECHAT_SIM_TOKENS_PER_S": "1",
    "SSECHAT_SIM_FILL_MAX_TOKENS": "true",
    "SSECHAT_RESUME_GRACE_S": str(GRACE_S),
    "SSECHAT_LOG_LEVEL": "warning",
}


# With two workers, 24 connections all landing on one is a 1 in 2**23 chance.
WARM_UP = 24


def request_bytes() -> bytes:
    body = json.dumps(
        {"messages": [{"role": "user", "content": "storm"}], "stream": True, "max_tokens": 1000}
    ).encode()
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def open_streams(base_url: str, count: int) -> list[asyncio.StreamWriter]:
    """``count`` streams, each read until its first event; their connections left open."""
    host, port = address(base_url)
    payload = request_bytes()
    gate = asyncio.Semaphore(100)

    async def one() -> asyncio.StreamWriter:
        async with gate:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:200]
            received = b""
            while b"\n\n" not in received:  # the first event (the role chunk)
                received += await reader.read(65536)
            return writer

    return await asyncio.gather(*(one() for _ in range(count)))


def storm(base_url: str, count: int, stale_s: float) -> None:
    """Start ``count`` streams, drop them all, and check everything they held is freed."""
    # Warm-up streams bring up what stays (each worker's keep-alive ticker, request
    # batcher …, started lazily): the baseline. Enough of them that every worker
    # gets one (the kernel spreads connections over the workers' sockets).
    asyncio.run(_open_and_close(base_url, WARM_UP))

    def warmed_up() -> bool:
        # A counter, not only a gauge: another worker's published gauges may be stale.
        samples = scrape(base_url)
        return (
            samples.value("ssechat_generations_total", **SIM, finish_reason="cancelled") == WARM_UP
            and samples.value("ssechat_hub_live_streams") == 0
        )

    wait_until(warmed_up, 10, "the warm-up stream abandoned")
    time.sleep(stale_s)  # every worker's published figures are now from after the warm-up
    before = scrape(base_url)
    tasks_before = before.value("ssechat_asyncio_tasks")

    async def run() -> None:
        writers = await open_streams(base_url, count)
        live = lambda: scrape(base_url).value("ssechat_hub_live_streams") == count  # noqa: E731
        await asyncio.to_thread(wait_until, live, 5 + stale_s, f"{count} live generations")
        for writer in writers:
            writer.transport.abort()

    asyncio.run(run())

    def responses_ended() -> bool:
        return scrape(base_url).value("ssechat_streams_active") == 0

    def generations_stopped() -> bool:
        return scrape(base_url).value("ssechat_hub_live_streams") == 0

    # Each response notices its client left and detaches from the hub (with Redis,
    # a round trip each); then each generation waits out the grace period.
    wait_until(responses_ended, DETACH_DEADLINE_S + stale_s, "every response ended")
    budget_s = GRACE_S + 1.0 + stale_s
    wait_until(generations_stopped, budget_s, f"every generation stopped within {budget_s} s")
    samples = scrape(base_url)
    for name, labels in (
        ("ssechat_generations_total", {**SIM, "finish_reason": "cancelled"}),
        ("ssechat_cancellations_total", {"reason": "abandoned"}),
        ("ssechat_client_disconnects_total", {}),
    ):
        assert samples.value(name, **labels) - before.value(name, **labels) == count, name
    assert samples.value("ssechat_stream_slots_held") == 0
    wait_until(
        lambda: scrape(base_url).value("ssechat_asyncio_tasks") <= tasks_before,
        10,
        f"asyncio tasks back to {tasks_before:g}",
    )


async def _open_and_close(base_url: str, count: int) -> None:
    for writer in await open_streams(base_url, count):
        writer.transport.abort()


def test_1000_abandoned_streams_on_the_memory_hub_free_their_compute() -> None:
    with backend_process(ENV) as server:
        storm(server.url, 1000, stale_s=0.0)
        status = server.terminate()
        log = server.log()
    assert status == 0, log
    assert "Traceback" not in log, log


@pytest.mark.redis
def test_300_abandoned_streams_on_the_redis_hub_with_two_workers(redis_url: str) -> None:
    args = ["--workers", "2", "--hub", "redis", "--redis-url", redis_url]
    with backend_process(ENV, args) as server:
        wait_until(lambda: scrape(server.url).value("ssechat_workers") == 2, 30, "both workers")
        storm(server.url, 300, stale_s=PUBLISH_S)
        status = server.terminate()
        log = server.log()
    assert status == 0, log
    assert "Traceback" not in log, log

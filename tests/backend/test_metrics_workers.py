"""``/metrics`` covers the whole deployment: two real workers, any of them answers.

Before: each worker answered with its own registry, so after 20 streams
``ssechat_streams_total`` read 9 or 11 depending on which worker took the
scrape. Now every scrape, whichever worker answers, reports the totals of
both, histograms included, and a worker killed and replaced keeps its
counts in them while its gauges leave.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backend.http.raw import wait_until
from tests.backend.scrape import Samples, scrape
from tests.servers import backend_process
from tests.whatwg_sse import parse_stream

CHAT = "/v1/chat/completions"
SIM = {"dialect": "chat_completions", "engine": "simulated"}
BATCH = 10
MAX_STREAMS = 200


def worker_files(directory: Path) -> dict[int, dict[str, Any]]:
    """The snapshot each live worker last published, by pid."""
    files: dict[int, dict[str, Any]] = {}
    for path in directory.glob("worker-*.json"):
        try:
            files[int(path.name.split("-")[1])] = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            continue
    return files


def streams_served(snapshot: dict[str, Any]) -> float:
    return float(sum(value for _, value in snapshot["ssechat_streams_total"]["series"]))


async def one_stream(http: httpx.AsyncClient, seed: int) -> tuple[int, int]:
    """(events, content chunks) of one streamed answer."""
    body = {
        "messages": [{"role": "user", "content": f"worker test {seed}"}],
        "stream": True,
        "seed": seed,
        "max_tokens": 12,
    }
    async with http.stream("POST", CHAT, json=body) as response:
        assert response.status_code == 200
        raw = await response.aread()
    events = parse_stream(raw)[0]
    chunks = 0
    for event in events[:-1]:
        choices = json.loads(event.data)["choices"]
        chunks += bool(choices and choices[0]["delta"].get("content"))
    return len(events), chunks


def totals(samples: Samples) -> dict[str, float]:
    return {
        "streams": samples.total("ssechat_streams_total", **SIM),
        "generations": samples.total("ssechat_generations_total", **SIM),
        "tokens": samples.total("ssechat_generated_tokens_total", **SIM),
        "events": samples.total("ssechat_events_sent_total"),
        "first token": samples.total("ssechat_time_to_first_token_seconds_count", **SIM),
        "durations": samples.total("ssechat_generation_duration_seconds_count", **SIM),
        "gaps": samples.total("ssechat_inter_token_latency_seconds_count", **SIM),
        "gaps in the lowest bucket": samples.total(
            "ssechat_inter_token_latency_seconds_bucket", le="0.001", **SIM
        ),
        "gaps in +Inf": samples.total("ssechat_inter_token_latency_seconds_bucket", le="+Inf"),
    }


@pytest.mark.redis
def test_every_scrape_reports_the_whole_deployment(redis_url: str, tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    # What an earlier run left: cleaned at start, never counted.
    leftover = {"ssechat_streams_total": {"type": "counter", "help": "x", "labels": []}}
    (metrics_dir / "retired-1-0000.json").write_text(json.dumps(leftover))
    env = {
        "SSECHAT_ENGINE": "simulated",
        "SSECHAT_SIM_TOKENS_PER_S": "200",
        "SSECHAT_METRICS_DIR": str(metrics_dir),
    }
    args = ["--workers", "2", "--hub", "redis", "--redis-url", redis_url]
    with backend_process(env, args) as server:
        url = server.url
        assert not (metrics_dir / "retired-1-0000.json").exists()
        wait_until(lambda: scrape(url).value("ssechat_workers") == 2, 30, "both workers")

        # Streams on fresh connections until both workers have served some.
        events = chunks = started = 0

        async def batch() -> None:
            nonlocal events, chunks, started
            limits = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
                results = await asyncio.gather(
                    *(one_stream(http, started + index) for index in range(BATCH))
                )
            started += BATCH
            events += sum(result[0] for result in results)
            chunks += sum(result[1] for result in results)

        while started < MAX_STREAMS:
            asyncio.run(batch())
            served = [streams_served(snapshot) for snapshot in worker_files(metrics_dir).values()]
            if len(served) == 2 and all(served):
                break
        pids = sorted(worker_files(metrics_dir))
        assert len(pids) == 2, "the two workers should both have taken streams"

        expected = {
            "streams": started,
            "generations": started,
            "tokens": chunks,
            "events": events,
            "first token": started,
            "durations": started,
            "gaps": chunks - started,
            "gaps in +Inf": chunks - started,
        }

        def reported() -> dict[str, float]:
            found = totals(scrape(url))
            found.pop("gaps in the lowest bucket")
            return found

        wait_until(lambda: reported() == expected, 10, f"the totals {expected}")
        first = totals(scrape(url))
        for _ in range(10):  # fresh connections: both workers answer some
            assert totals(scrape(url)) == first

        # A worker dies: the supervisor replaces it; what it counted stays counted.
        killed = pids[0]
        os.kill(killed, signal.SIGKILL)

        def replaced() -> bool:
            live = worker_files(metrics_dir)
            return killed not in live and len(live) == 2

        wait_until(replaced, 60, "a replacement worker")
        assert list(metrics_dir.glob(f"retired-{killed}-*.json"))
        wait_until(lambda: scrape(url).value("ssechat_workers") == 2, 10, "two workers again")
        for _ in range(10):
            samples = scrape(url)
            assert totals(samples) == first
            assert samples.value("ssechat_workers") == 2
            assert samples.value("ssechat_streams_active") == 0
            assert samples.value("ssechat_hub_live_streams") == 0
        assert server.process.poll() is None

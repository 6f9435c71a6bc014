"""What ``/metrics`` counts, on one worker, against a real server on a real socket.

Each figure is checked against what the client itself saw (chunks, events,
ids), never against a number written into the test. The exposition is read
with prometheus_client's parser.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.app import create_app
from backend.config import Settings
from backend.metrics.registry import Counter, Gauge, Histogram, Registry, merge, render
from tests.backend.engines.upstream_faults import FaultyUpstream
from tests.backend.fault_engines import FailingEngine
from tests.backend.http.raw import wait_until
from tests.backend.scrape import Samples, parse, scrape
from tests.servers import serve_app
from tests.whatwg_sse import parse_stream

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Count what you stream."}]
SIM = {"dialect": "chat_completions", "engine": "simulated"}


@pytest.fixture
def server() -> Iterator[str]:
    settings = Settings(engine="simulated", sim_tokens_per_s=0.0)
    app = create_app(
        settings, extra_engines=[FailingEngine("failing", tokens_before_failure=3, crash=False)]
    )
    with serve_app(app) as base_url:
        yield base_url


def content_chunks(raw: bytes) -> int:
    count = 0
    for event in parse_stream(raw)[0]:
        if event.data != "[DONE]":
            choices = json.loads(event.data).get("choices") or []
            if choices and choices[0]["delta"].get("content"):
                count += 1
    return count


def stream(base_url: str, body: dict[str, Any]) -> tuple[str, bytes]:
    body = {"messages": MESSAGES, "stream": True, **body}
    with (
        httpx.Client(base_url=base_url, timeout=30) as http,
        http.stream("POST", CHAT, json=body) as r,
    ):
        assert r.status_code == 200
        return r.headers["x-stream-id"], r.read()


def test_a_stream_is_counted_as_the_client_saw_it(server: str) -> None:
    before = scrape(server)
    _, raw = stream(server, {"max_tokens": 9, "seed": 3})
    events = parse_stream(raw)[0]
    tokens = content_chunks(raw)
    after = scrape(server)

    def delta(name: str, **labels: str) -> float:
        return after.value(name, **labels) - before.value(name, **labels)

    assert tokens > 1
    assert delta("ssechat_streams_total", **SIM) == 1
    assert delta("ssechat_generated_tokens_total", **SIM) == tokens
    assert delta("ssechat_events_sent_total") == len(events)
    finish = json.loads(events[-2].data)["choices"][0]["finish_reason"]
    assert delta("ssechat_generations_total", **SIM, finish_reason=finish) == 1
    assert delta("ssechat_time_to_first_token_seconds_count", **SIM) == 1
    assert delta("ssechat_generation_duration_seconds_count", **SIM) == 1
    # one gap between each two consecutive tokens
    assert delta("ssechat_inter_token_latency_seconds_count", **SIM) == tokens - 1
    assert after.types["ssechat_inter_token_latency_seconds"] == "histogram"
    assert after.value("ssechat_workers") == 1


def test_non_streamed_answers_count_tokens_but_not_streams(server: str) -> None:
    before = scrape(server)
    answer = httpx.post(
        f"{server}{CHAT}", json={"messages": MESSAGES, "max_tokens": 5}, timeout=30
    ).json()
    after = scrape(server)
    assert after.value("ssechat_streams_total", **SIM) == before.value(
        "ssechat_streams_total", **SIM
    )
    produced = after.value("ssechat_generated_tokens_total", **SIM) - before.value(
        "ssechat_generated_tokens_total", **SIM
    )
    assert produced == answer["usage"]["completion_tokens"]


def test_resumes_count_reconnections_after_an_event_id(server: str) -> None:
    stream_id, raw = stream(server, {"max_tokens": 6})
    count = len(parse_stream(raw)[0])
    before = scrape(server).value("ssechat_resumes_total")
    url = f"{server}{CHAT}/{stream_id}/events"
    with httpx.Client(timeout=30) as http:
        assert http.get(url).status_code == 200  # from the start: not a resume
        assert http.get(url, headers={"Last-Event-ID": "2"}).status_code == 200
        assert http.get(url, headers={"Last-Event-ID": str(count)}).status_code == 204
        assert http.get(f"{server}{CHAT}/chatcmpl-{'0' * 32}/events").status_code == 404
    assert scrape(server).value("ssechat_resumes_total") - before == 2


def test_engine_errors_count_by_engine_and_code(server: str) -> None:
    before = scrape(server)
    _, raw = stream(server, {"model": "failing"})
    assert b'"code":"gone"' in raw
    answer = httpx.post(f"{server}{CHAT}", json={"messages": MESSAGES, "model": "failing"})
    assert answer.status_code == 500
    after = scrape(server)
    failing = {"dialect": "chat_completions", "engine": "failing"}
    assert (
        after.value("ssechat_engine_errors_total", engine="failing", code="gone")
        - (before.value("ssechat_engine_errors_total", engine="failing", code="gone"))
        == 2
    )
    assert after.value("ssechat_generations_total", **failing, finish_reason="error") == 2
    assert (
        after.value("ssechat_errors_total", type="engine_error")
        - before.value("ssechat_errors_total", type="engine_error")
        == 2
    )


def test_upstream_faults_count_by_code() -> None:
    upstream = FaultyUpstream()
    with serve_app(upstream, lifespan="off") as upstream_url:
        settings = Settings(
            engine="openai", upstream_url=f"{upstream_url}/status-502/v1", model="gpt-test"
        )
        with serve_app(create_app(settings)) as base_url:
            _, raw = stream(base_url, {"model": "gpt-test"})
            samples = scrape(base_url)
    errors = [event.data for event in parse_stream(raw)[0] if '"error"' in event.data]
    code = json.loads(errors[0])["error"]["code"]
    assert code.startswith("upstream_")
    assert samples.value("ssechat_engine_errors_total", engine="openai", code=code) == 1
    assert samples.series("ssechat_engine_errors_total") == [
        ({"engine": "openai", "code": code}, 1)
    ]


def test_a_generation_stopped_by_a_disconnect_ends_cancelled() -> None:
    settings = Settings(engine="simulated", sim_tokens_per_s=50.0, resume_grace_s=0.0)
    with serve_app(create_app(settings)) as base_url:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            body = {"messages": MESSAGES, "stream": True, "max_tokens": 2000}
            with http.stream("POST", CHAT, json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data:") and '"content":"' in line:
                        break

        def cancelled() -> bool:
            return (
                scrape(base_url).value(
                    "ssechat_generations_total", **SIM, finish_reason="cancelled"
                )
                == 1
            )

        wait_until(cancelled, 10, "the generation counted as cancelled")
        samples = scrape(base_url)
    assert samples.value("ssechat_cancellations_total", reason="abandoned") == 1
    assert samples.value("ssechat_client_disconnects_total") == 1
    assert samples.value("ssechat_hub_live_streams") == 0


# -- the registry and the adding up, without a server -------------------------------------------


def worker_registry(streams: int, gap_s: float, live: float) -> Registry:
    registry = Registry()
    counter = Counter("t_streams_total", "Streams.", ("dialect",))
    histogram = Histogram("t_gap_seconds", "Gaps.", (0.01, 0.1), ("dialect",))
    registry.register(counter)
    registry.register(histogram)
    registry.register(Gauge("t_live", "Live.", lambda: live))
    registry.register(Gauge("t_store", "Store.", lambda: live * 10, mode="max"))
    counter.add(("chat",), streams)
    for _ in range(streams):
        histogram.observe(gap_s, ("chat",))
    return registry


def test_merge_adds_counts_of_every_worker_and_gauges_of_live_ones() -> None:
    one = worker_registry(3, 0.005, live=2).snapshot()
    two = worker_registry(4, 0.05, live=5).snapshot()
    dead = worker_registry(5, 1.0, live=7).snapshot()
    samples: Samples = parse(render(merge([one, two], [dead])))
    assert samples.value("t_streams_total", dialect="chat") == 12
    assert samples.value("t_gap_seconds_bucket", dialect="chat", le="0.01") == 3
    assert samples.value("t_gap_seconds_bucket", dialect="chat", le="0.1") == 7
    assert samples.value("t_gap_seconds_bucket", dialect="chat", le="+Inf") == 12
    assert samples.value("t_gap_seconds_count", dialect="chat") == 12
    assert samples.value("t_gap_seconds_sum", dialect="chat") == pytest.approx(
        3 * 0.005 + 4 * 0.05 + 5 * 1.0
    )
    assert samples.value("t_live") == 7  # 2 + 5: the dead worker's 7 is not live
    assert samples.value("t_store") == 50  # max of 20 and 50


def test_a_series_without_its_labels_is_refused() -> None:
    histogram = Histogram("t_seconds", "T.", (1.0,), ("dialect", "engine"))
    with pytest.raises(ValueError, match="takes labels"):
        histogram.observe(0.5)  # e.g. an old ``on_first_token=...observe`` hook
    with pytest.raises(ValueError, match="takes labels"):
        Counter("t_total", "T.", ("dialect", "engine")).inc()


def test_a_counter_registered_twice_is_refused_and_a_gauge_replaced() -> None:
    registry = Registry()
    registry.register(Counter("t_total", "T."))
    with pytest.raises(ValueError, match="twice"):
        registry.register(Counter("t_total", "T."))
    registry.register(Gauge("t_gauge", "G.", lambda: 1.0))
    registry.register(Gauge("t_gauge", "G.", lambda: 2.0))
    assert parse(render(registry.snapshot())).value("t_gauge") == 2

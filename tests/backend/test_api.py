"""The HTTP contract of DESIGN.md, against a real uvicorn server on a real socket."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.app import create_app
from backend.config import Settings
from tests.backend.fault_engines import FailingEngine
from tests.servers import serve_app
from tests.whatwg_sse import ParsedEvent, parse_stream

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "How does streaming work?"}]


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"engine": "simulated", "sim_tokens_per_s": 0.0}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def server() -> Iterator[str]:
    app = create_app(
        make_settings(max_message_chars=1000, max_messages=8, max_body_bytes=4096),
        extra_engines=[
            FailingEngine("failing", tokens_before_failure=3, crash=False),
            FailingEngine("crashing", tokens_before_failure=2, crash=True),
        ],
    )
    with serve_app(app) as base_url:
        yield base_url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as http:
        yield http


def stream_raw(client: httpx.Client, body: dict[str, Any]) -> tuple[httpx.Response, bytes]:
    with client.stream("POST", CHAT, json={"stream": True, **body}) as response:
        raw = response.read()
    return response, raw


def payloads(events: list[ParsedEvent]) -> list[Any]:
    return [event.data if event.data == "[DONE]" else json.loads(event.data) for event in events]


def joined_text(chunks: list[Any]) -> str:
    return "".join(
        chunk["choices"][0]["delta"].get("content") or ""
        for chunk in chunks
        if isinstance(chunk, dict) and chunk.get("choices")
    )


def metric(client: httpx.Client, name: str, labels: str = "") -> float:
    text = client.get("/metrics").text
    match = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def wait_for(condition: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_stream_follows_the_wire_contract(client: httpx.Client) -> None:
    response, raw = stream_raw(client, {"messages": MESSAGES, "seed": 7, "max_tokens": 40})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    stream_id = response.headers["x-stream-id"]
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", stream_id)

    events, retry = parse_stream(raw)
    assert retry == 1000
    assert raw.startswith(b"id: 1\nretry: 1000\n")
    assert [event.last_event_id for event in events] == [str(n) for n in range(1, len(events) + 1)]
    chunks = payloads(events)
    assert chunks[-1] == "[DONE]"
    assert all(chunk["id"] == stream_id for chunk in chunks[:-1])
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks[:-1])
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] in {"stop", "length"}
    # data is one line of JSON per event
    assert all(
        line.startswith((b"id: ", b"data: ", b"retry: ")) for line in raw.split(b"\n") if line
    )


def test_stream_text_equals_non_stream_text(client: httpx.Client) -> None:
    body = {"messages": MESSAGES, "seed": 11, "max_tokens": 60}
    _, raw = stream_raw(client, body)
    streamed = joined_text(payloads(parse_stream(raw)[0]))
    whole = client.post(CHAT, json=body).json()
    assert whole["object"] == "chat.completion"
    assert streamed == whole["choices"][0]["message"]["content"]
    assert len(streamed) > 20
    # another seed, another answer: determinism is per request, not a constant
    other = client.post(CHAT, json={**body, "seed": 12}).json()
    assert other["choices"][0]["message"]["content"] != streamed


def test_include_usage_adds_a_usage_chunk(client: httpx.Client) -> None:
    body = {"messages": MESSAGES, "seed": 3, "max_tokens": 5}
    _, raw = stream_raw(client, {**body, "stream_options": {"include_usage": True}})
    chunks = payloads(parse_stream(raw)[0])
    usage_chunk = chunks[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 5
    assert chunks[-3]["choices"][0]["finish_reason"] == "length"
    _, plain = stream_raw(client, body)
    assert all("usage" not in chunk for chunk in payloads(parse_stream(plain)[0])[:-1])


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"messages": []}, 400, "messages"),
        ({}, 400, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "role"),
        ({"messages": "hello"}, 400, "messages"),
        ({"messages": MESSAGES, "temperature": 2.5}, 400, "temperature"),
        ({"messages": MESSAGES, "temperature": -1}, 400, "temperature"),
        ({"messages": MESSAGES, "top_p": 1.5}, 400, "top_p"),
        ({"messages": MESSAGES, "max_tokens": 0}, 400, "max_tokens"),
        ({"messages": MESSAGES, "max_tokens": 10**6}, 400, "max_tokens"),
        ({"messages": MESSAGES, "n": 2}, 400, "n"),
        ({"messages": MESSAGES, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop"),
        ({"messages": MESSAGES, "stream": "sometimes"}, 400, "stream"),
        ({"messages": [{"role": "user", "content": "x" * 1001}]}, 400, "1000"),
        ({"messages": MESSAGES * 9}, 400, "Too many messages"),
        ({"messages": MESSAGES, "model": "gpt-9"}, 404, "gpt-9"),
        ([1, 2, 3], 400, "Invalid request"),
    ],
)
def test_bad_input_gets_a_clear_4xx(
    client: httpx.Client, body: Any, status: int, needle: str
) -> None:
    for stream in (False, True):
        payload = {**body, "stream": body.get("stream", stream)} if isinstance(body, dict) else body
        response = client.post(CHAT, json=payload)
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert needle in error["message"] or needle == error.get("param")
        assert error["type"] == "invalid_request_error"


def test_malformed_json_is_a_400(client: httpx.Client) -> None:
    response = client.post(
        CHAT, content=b'{"messages": [', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_body_over_the_limit_is_refused_before_reading(client: httpx.Client) -> None:
    big = json.dumps({"messages": [{"role": "user", "content": "x" * 5000}]}).encode()
    response = client.post(CHAT, content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while reading
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    response = client.post(CHAT, content=chunked(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert "4096" in response.json()["error"]["message"]


def test_engine_error_mid_stream_becomes_an_error_event(client: httpx.Client) -> None:
    for model, message in (("failing", "model backend went away"), ("crashing", "engine bug")):
        response, raw = stream_raw(client, {"messages": MESSAGES, "model": model})
        assert response.status_code == 200
        chunks = payloads(parse_stream(raw)[0])
        assert chunks[-1] == "[DONE]"
        assert message in chunks[-2]["error"]["message"]
        assert joined_text(chunks[:-2]).startswith(" t0 t1")
    assert metric(client, "ssechat_errors_total", '{type="engine_error"}') >= 1
    # the server is still healthy and answers the next request
    assert client.post(CHAT, json={"messages": MESSAGES, "max_tokens": 3}).status_code == 200


def test_engine_error_without_streaming_is_a_5xx_with_a_body(client: httpx.Client) -> None:
    response = client.post(CHAT, json={"messages": MESSAGES, "model": "failing"})
    assert response.status_code == 500
    assert response.json()["error"]["message"] == "model backend went away"


def test_resume_replays_after_last_event_id(client: httpx.Client) -> None:
    response, raw = stream_raw(client, {"messages": MESSAGES, "seed": 5, "max_tokens": 12})
    stream_id = response.headers["x-stream-id"]
    full = parse_stream(raw)[0]
    url = f"{CHAT}/{stream_id}/events"
    with client.stream("GET", url, headers={"Last-Event-ID": "4"}) as resumed:
        assert resumed.headers["x-stream-id"] == stream_id
        tail = parse_stream(resumed.read())[0]
    assert tail == full[4:]
    with client.stream("GET", url, params={"last_event_id": "10"}) as resumed:
        assert parse_stream(resumed.read())[0] == full[10:]
    # the header wins over the query (a reconnecting EventSource keeps its URL)
    with client.stream(
        "GET", url, params={"last_event_id": "1"}, headers={"Last-Event-ID": "12"}
    ) as resumed:
        assert parse_stream(resumed.read())[0] == full[12:]


def test_resume_errors(client: httpx.Client) -> None:
    missing = client.get(f"{CHAT}/chatcmpl-{'0' * 32}/events")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    assert client.post(f"{CHAT}/chatcmpl-{'0' * 32}/cancel").status_code == 404
    response, _ = stream_raw(client, {"messages": MESSAGES, "max_tokens": 2})
    bad = client.get(
        f"{CHAT}/{response.headers['x-stream-id']}/events", headers={"Last-Event-ID": "abc"}
    )
    assert bad.status_code == 400
    assert "Last-Event-ID" in bad.json()["error"]["message"]


def test_models_health_and_metrics(client: httpx.Client) -> None:
    models = client.get("/v1/models").json()
    ids = [model["id"] for model in models["data"]]
    assert models["object"] == "list"
    assert "ssechat-simulated" in ids
    assert "failing" in ids
    health = client.get("/healthz").json()
    assert health == health | {"status": "ok", "engine": "simulated", "hub": "memory"}
    stream_raw(client, {"messages": MESSAGES, "max_tokens": 3})
    text = client.get("/metrics").text
    assert "# TYPE ssechat_time_to_first_token_seconds histogram" in text
    chat = '{dialect="chat_completions",engine="simulated"}'
    assert metric(client, "ssechat_streams_total", chat) >= 1
    assert metric(client, "ssechat_events_sent_total") >= 6


def test_keepalive_comment_when_idle() -> None:
    settings = make_settings(sim_tokens_per_s=4.0, keepalive_s=0.05)
    with (
        serve_app(create_app(settings)) as base_url,
        httpx.Client(base_url=base_url, timeout=30) as http,
    ):
        _, raw = stream_raw(http, {"messages": MESSAGES, "max_tokens": 3})
    assert b"\n: ping\n" in raw
    events, _ = parse_stream(raw)
    assert payloads(events)[-1] == "[DONE]"


def test_client_disconnect_cancels_generation() -> None:
    settings = make_settings(sim_tokens_per_s=40.0, resume_grace_s=0.0)
    app = create_app(settings)
    with serve_app(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        with http.stream(
            "POST", CHAT, json={"messages": MESSAGES, "stream": True, "max_tokens": 500}
        ) as response:
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("id: 3"):
                    break
        # the connection is closed here, mid-answer
        wait_for(lambda: metric(http, "ssechat_cancellations_total", '{reason="abandoned"}') == 1)
        assert metric(http, "ssechat_client_disconnects_total") == 1
        hub = app.state.services.hub
        wait_for(lambda: hub.live_streams == 0)


def test_explicit_cancel_ends_every_subscriber_with_done() -> None:
    settings = make_settings(sim_tokens_per_s=20.0)
    app = create_app(settings)
    with serve_app(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        body = {"messages": MESSAGES, "stream": True, "max_tokens": 500}
        with http.stream("POST", CHAT, json=body) as response:
            stream_id = response.headers["x-stream-id"]
            raw = b""
            pieces = response.iter_bytes()
            for chunk in pieces:
                raw += chunk
                if b"id: 3\n" in raw:
                    break
            answer = http.post(f"{CHAT}/{stream_id}/cancel")
            assert answer.status_code == 200
            assert answer.json()["cancelled"] is True
            raw += b"".join(pieces)
        chunks = payloads(parse_stream(raw)[0])
        assert chunks[-1] == "[DONE]"
        assert chunks[-2]["choices"][0]["finish_reason"] == "cancelled"
        assert len(chunks) < 100
        assert metric(http, "ssechat_cancellations_total", '{reason="cancelled"}') == 1


def test_simulated_fill_runs_to_max_tokens_and_keeps_the_natural_prefix() -> None:
    body = {"messages": MESSAGES, "seed": 9, "max_tokens": 300}
    with serve_app(create_app(make_settings())) as base_url:
        natural = httpx.post(f"{base_url}{CHAT}", json=body, timeout=30).json()
    with serve_app(create_app(make_settings(sim_fill_max_tokens=True))) as base_url:
        filled = httpx.post(f"{base_url}{CHAT}", json=body, timeout=30).json()
    assert natural["usage"]["completion_tokens"] < 300
    assert natural["choices"][0]["finish_reason"] == "stop"
    assert filled["usage"]["completion_tokens"] == 300
    assert filled["choices"][0]["finish_reason"] == "length"
    text = natural["choices"][0]["message"]["content"]
    assert filled["choices"][0]["message"]["content"].startswith(text)

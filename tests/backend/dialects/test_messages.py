"""``/v1/messages`` with the official ``anthropic`` SDK (and raw bytes) against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from anthropic import Anthropic
from anthropic.types import MessageParam

from backend.engines.base import Engine, TokenDelta, Usage
from tests.backend.dialects.helpers import (
    QUESTION,
    SIMULATED,
    SLOW,
    SYSTEM,
    chat_text,
    datas,
    dialect_server,
    read_sse,
    scripted,
)
from tests.backend.scripted_engine import ScriptedEngine

MESSAGES = "/v1/messages"
USER: list[MessageParam] = [{"role": "user", "content": QUESTION}]
# Silences longer than the keep-alive interval between its deltas.
PAUSES = ScriptedEngine(
    "scripted-pauses",
    (
        TokenDelta(text="a"),
        TokenDelta(text="b"),
        TokenDelta(finish_reason="stop", usage=Usage(1, 2)),
    ),
    delay_s=0.4,
)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[Engine]]]:
    with dialect_server(extra=[PAUSES], keepalive_s=0.1) as running:
        yield running


def test_sdk_stream_text_and_final_message_equal_chat_completions(
    anthropic_sdk: Anthropic, url: str, http: httpx.Client
) -> None:
    with anthropic_sdk.messages.stream(
        model=SIMULATED,
        max_tokens=400,
        system=SYSTEM,
        messages=USER,
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == chat_text(http, url, model=SIMULATED, max_tokens=400)
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 10
    assert final.usage.input_tokens > 0
    whole = anthropic_sdk.messages.create(
        model=SIMULATED,
        max_tokens=400,
        system=SYSTEM,
        messages=USER,
    )
    assert whole.model_dump(exclude={"id"}) == final.model_dump(exclude={"id"})


def test_raw_events_are_named_and_numbered(http: httpx.Client) -> None:
    body = {"model": SIMULATED, "max_tokens": 12, "messages": USER, "stream": True}
    response, events, _ = read_sse(http, "POST", MESSAGES, json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = datas(events)
    assert [int(event.last_event_id) for event in events] == list(range(1, len(events) + 1))
    for event, payload in zip(events, payloads, strict=True):
        assert event.type == payload["type"]
    assert response.headers["x-stream-id"] == payloads[0]["message"]["id"]
    assert [p["type"] for p in payloads[:2]] == ["message_start", "content_block_start"]
    assert [p["type"] for p in payloads[-3:]] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert payloads[-2]["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert payloads[-2]["usage"]["output_tokens"] == 12


def test_thinking_text_and_tool_use_blocks(anthropic_sdk: Anthropic, http: httpx.Client) -> None:
    with anthropic_sdk.messages.stream(
        model="scripted-every-kind",
        max_tokens=100,
        messages=USER,
    ) as stream:
        final = stream.get_final_message()
    thinking, text, weather, clock = final.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "Let me think."
    assert thinking.signature
    assert text.type == "text"
    assert text.text == 'Hello 🚀 "world"'
    assert weather.type == "tool_use"
    assert clock.type == "tool_use"
    assert (weather.id, weather.name, weather.input) == ("call_a", "get_weather", {"city": "Oslo"})
    assert (clock.id, clock.name, clock.input) == ("call_b", "get_time", {})
    assert final.stop_reason == "tool_use"
    # Anthropic counts cache reads apart from input tokens.
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (5, 2)
    assert final.usage.output_tokens == 9
    whole = anthropic_sdk.messages.create(
        model="scripted-every-kind",
        max_tokens=100,
        messages=USER,
    )
    assert whole.model_dump(exclude={"id"}) == final.model_dump(exclude={"id"})
    body = {"model": "scripted-every-kind", "max_tokens": 100, "messages": USER, "stream": True}
    _, events, _ = read_sse(http, "POST", MESSAGES, json=body)
    deltas = [p["delta"]["type"] for p in datas(events) if p["type"] == "content_block_delta"]
    assert deltas == [
        "thinking_delta",
        "thinking_delta",
        "signature_delta",
        "text_delta",
        "text_delta",
        "input_json_delta",
        "input_json_delta",
        "input_json_delta",
    ]


@pytest.mark.parametrize(
    ("model", "stop_reason", "stop_sequence", "text"),
    [
        ("scripted-stop-sequence", "stop_sequence", "THREE", "one two"),
        ("scripted-length", "max_tokens", None, "a b c"),
        ("scripted-refusal", "refusal", None, "I cannot help with that."),
    ],
)
def test_stop_reasons(
    anthropic_sdk: Anthropic, model: str, stop_reason: str, stop_sequence: str | None, text: str
) -> None:
    with anthropic_sdk.messages.stream(
        model=model,
        max_tokens=100,
        messages=USER,
        stop_sequences=["THREE"],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == stop_reason
    assert final.stop_sequence == stop_sequence
    assert "".join(block.text for block in final.content if block.type == "text") == text


def test_a_stop_sequence_of_the_simulated_engine_is_named_streamed_and_not(
    anthropic_sdk: Anthropic, http: httpx.Client
) -> None:
    full = anthropic_sdk.messages.create(model=SIMULATED, max_tokens=400, messages=USER)
    assert full.content[0].type == "text"
    text = full.content[0].text
    stop = " " + text.split()[4]  # a word in the middle of the answer
    asked: dict[str, Any] = {
        "model": SIMULATED,
        "max_tokens": 400,
        "messages": USER,
        "stop_sequences": ["never in the text", stop],
    }
    with anthropic_sdk.messages.stream(**asked) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == text[: text.index(stop)]
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", stop)
    whole = anthropic_sdk.messages.create(**asked)
    assert whole.model_dump(exclude={"id"}) == final.model_dump(exclude={"id"})
    # Chat Completions names it as vLLM does: the choice's stop_reason.
    chat = http.post(
        "/v1/chat/completions",
        json={
            "model": SIMULATED,
            "max_tokens": 400,
            "messages": USER,
            "stop": ["never in the text", stop],
        },
    ).json()["choices"][0]
    assert (chat["message"]["content"], chat["finish_reason"]) == (streamed, "stop")
    assert chat["stop_reason"] == stop


def test_request_fields_reach_the_engine(anthropic_sdk: Anthropic, engines: list[Engine]) -> None:
    engine = scripted(engines, "scripted-length")
    anthropic_sdk.messages.create(
        model="scripted-length",
        max_tokens=2048,
        system=[
            {"type": "text", "text": "Be ", "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "brief."},
        ],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "look", "input": {"at": "it"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": "a cat",
                        "is_error": False,
                    },
                    {"type": "text", "text": "So?"},
                ],
            },
        ],
        tools=[{"name": "look", "description": "Look", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 1024},
        stop_sequences=["END"],
        metadata={"user_id": "u1"},
        # This SDK version has no sampling arguments; the API still takes them.
        extra_body={"temperature": 0.5, "top_p": 0.9, "top_k": 40},
        extra_headers={"anthropic-beta": "interleaved-thinking-2025-05-14"},
    )
    request = engine.requests[-1]
    roles = [m.role for m in request.messages]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    system, question, assistant, result, follow_up = request.messages
    assert system.content == "Be brief."
    assert question.parts[0].data == {"url": "data:image/png;base64,AAAA"}
    assert assistant.content == "Let me look."  # the earlier thinking stays out
    assert [(c.id, c.name, json.loads(c.arguments)) for c in assistant.tool_calls] == [
        ("toolu_1", "look", {"at": "it"})
    ]
    assert (result.tool_call_id, result.content) == ("toolu_1", "a cat")
    assert follow_up.content == "So?"
    assert request.tool_choice == "required"
    assert request.parallel_tool_calls is False
    assert request.reasoning_budget_tokens == 1024
    assert request.stop == ("END",)
    assert (request.temperature, request.top_p, request.top_k) == (0.5, 0.9, 40)
    assert request.user == "u1"
    assert (request.max_tokens, request.max_tokens_field) == (2048, "max_tokens")


def anthropic_error(reply: httpx.Response, status: int, error_type: str) -> str:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert set(body["error"]) == {"type", "message"}
    message: str = body["error"]["message"]
    return message


@pytest.mark.parametrize(
    ("body", "status", "error_type", "mentions"),
    [
        ({"messages": USER}, 400, "invalid_request_error", "max_tokens"),
        ({"max_tokens": 10}, 400, "invalid_request_error", "messages"),
        ({"max_tokens": 10, "messages": USER, "n": 2}, 400, "invalid_request_error", "n"),
        (
            {"max_tokens": 10, "messages": [{"role": "system", "content": "x"}]},
            400,
            "invalid_request_error",
            "role",
        ),
        (
            {"max_tokens": 10, "messages": USER, "temperature": 1.5},
            400,
            "invalid_request_error",
            "temperature",
        ),
        ({"max_tokens": 10, "messages": USER, "model": "nope"}, 404, "not_found_error", "nope"),
        ({"max_tokens": 10**6, "messages": USER}, 400, "invalid_request_error", "max_tokens"),
        (
            {
                "max_tokens": 2000,
                "messages": USER,
                "thinking": {"type": "enabled", "budget_tokens": 4000},
            },
            400,
            "invalid_request_error",
            "budget_tokens",
        ),
        (
            {
                "max_tokens": 10,
                "messages": USER,
                "tools": [{"name": "f", "input_schema": {"type": "string"}}],
            },
            400,
            "invalid_request_error",
            "tools[0].input_schema",
        ),
        (
            {
                "max_tokens": 2000,
                "messages": USER,
                "thinking": {"type": "enabled", "budget_tokens": 1024},
            },
            400,
            "invalid_request_error",
            "'thinking' is not supported",
        ),
        ({"max_tokens": 10, "messages": USER, "top_k": 5}, 400, "invalid_request_error", "top_k"),
        (
            {"max_tokens": 10, "messages": USER, "stop_sequences": [""]},
            400,
            "invalid_request_error",
            "stop_sequences",
        ),
    ],
)
def test_every_bad_input_gets_anthropic_s_error_shape(
    http: httpx.Client, body: dict[str, Any], status: int, error_type: str, mentions: str
) -> None:
    reply = http.post(MESSAGES, json={"model": SIMULATED, **body})
    assert mentions in anthropic_error(reply, status, error_type)


def test_malformed_json_and_the_sdk_s_exceptions(
    anthropic_sdk: Anthropic, http: httpx.Client
) -> None:
    reply = http.post(MESSAGES, content=b"{not json", headers={"content-type": "application/json"})
    anthropic_error(reply, 400, "invalid_request_error")
    with pytest.raises(anthropic.NotFoundError):
        anthropic_sdk.messages.create(model="nope", max_tokens=10, messages=USER)
    with pytest.raises(anthropic.BadRequestError, match="'thinking' is not supported"):
        anthropic_sdk.messages.create(
            model=SIMULATED,
            max_tokens=2000,
            messages=USER,
            thinking={"type": "enabled", "budget_tokens": 1024},
        )


def test_keys_by_x_api_key_or_bearer_and_errors_in_anthropic_shape() -> None:
    with (
        dialect_server(api_keys="k1", max_body_bytes=2048) as (url, _),
        httpx.Client(base_url=url, timeout=30) as http,
    ):
        body = {"model": SIMULATED, "max_tokens": 5, "messages": USER}
        version = {"anthropic-version": "2023-06-01"}
        assert http.post(MESSAGES, json=body, headers={"x-api-key": "k1", **version}).is_success
        assert http.post(MESSAGES, json=body, headers={"authorization": "Bearer k1"}).is_success
        anthropic_error(http.post(MESSAGES, json=body), 401, "authentication_error")
        anthropic_error(
            http.post(MESSAGES, json=body, headers={"x-api-key": "k2"}), 401, "authentication_error"
        )
        big = {**body, "messages": [{"role": "user", "content": "x" * 4096}]}
        anthropic_error(
            http.post(MESSAGES, json=big, headers={"x-api-key": "k1"}), 413, "request_too_large"
        )
        with pytest.raises(anthropic.AuthenticationError):
            Anthropic(base_url=url, api_key="k2", max_retries=0).messages.create(
                model=SIMULATED,
                max_tokens=5,
                messages=USER,
            )
        # Another key cannot resume or cancel this key's stream.
        with http.stream(
            "POST", MESSAGES, json={**body, "stream": True}, headers={"x-api-key": "k1"}
        ) as response:
            stream_id = response.headers["x-stream-id"]
            response.read()
        foreign = http.get(f"{MESSAGES}/{stream_id}/events", headers={"x-api-key": "k2"})
        anthropic_error(foreign, 401, "authentication_error")
        assert (
            http.get(f"{MESSAGES}/{stream_id}/events", headers={"x-api-key": "k1"}).status_code
            == 200
        )


@pytest.mark.parametrize("model", ["failing", "crashing"])
def test_a_failure_mid_stream_is_an_error_event_that_ends_the_stream(
    model: str, anthropic_sdk: Anthropic, http: httpx.Client
) -> None:
    body = {"model": model, "max_tokens": 50, "messages": USER, "stream": True}
    _, events, _ = read_sse(http, "POST", MESSAGES, json=body)
    last = datas(events)[-1]
    assert events[-1].type == "error"
    assert last["type"] == "error"
    assert last["error"]["type"] == "api_error"
    assert "message_stop" not in [event.type for event in events]
    assert [int(event.last_event_id) for event in events] == list(range(1, len(events) + 1))
    with (
        pytest.raises(anthropic.APIStatusError),
        anthropic_sdk.messages.stream(
            model=model,
            max_tokens=50,
            messages=USER,
        ) as stream,
    ):
        stream.get_final_message()
    anthropic_error(http.post(MESSAGES, json={**body, "stream": False}), 500, "api_error")


def test_keep_alive_is_an_anthropic_ping_without_an_id(http: httpx.Client) -> None:
    body = {"model": "scripted-pauses", "max_tokens": 10, "messages": USER, "stream": True}
    _, events, raw = read_sse(http, "POST", MESSAGES, json=body)
    assert b'event: ping\ndata: {"type":"ping"}\n\n' in raw
    pings = [event for event in events if event.type == "ping"]
    assert pings
    numbered = [event for event in events if event.type != "ping"]
    # A ping carries no id of its own: the ids of the real events stay 1, 2, 3 …
    assert len({event.last_event_id for event in numbered}) == len(numbered)
    text = "".join(
        p["delta"]["text"] for p in datas(numbered) if p["type"] == "content_block_delta"
    )
    assert text == "ab"


def test_resume_cancel_and_204_after_the_end(http: httpx.Client) -> None:
    body = {"model": SIMULATED, "max_tokens": 30, "messages": USER, "stream": True}
    response, events, _raw = read_sse(http, "POST", MESSAGES, json=body)
    stream_id = response.headers["x-stream-id"]
    _, tail, _ = read_sse(
        http, "GET", f"{MESSAGES}/{stream_id}/events", headers={"Last-Event-ID": "3"}
    )
    assert [(e.type, e.data, e.last_event_id) for e in tail] == [
        (e.type, e.data, e.last_event_id) for e in events[3:]
    ]
    after_end = http.get(
        f"{MESSAGES}/{stream_id}/events", headers={"Last-Event-ID": str(len(events))}
    )
    assert after_end.status_code == 204
    ahead = http.get(f"{MESSAGES}/{stream_id}/events", headers={"Last-Event-ID": "100000"})
    assert ahead.status_code == 204
    anthropic_error(http.get(f"{MESSAGES}/msg_nope/events"), 404, "not_found_error")
    done = http.post(f"{MESSAGES}/{stream_id}/cancel").json()
    assert done == {"id": stream_id, "type": "message_cancellation", "cancelled": False}

    live = {"model": SLOW, "max_tokens": 400, "messages": USER, "stream": True}
    with http.stream("POST", MESSAGES, json=live) as response:
        stream_id = response.headers["x-stream-id"]
        lines = response.iter_lines()
        for line in lines:
            if line.startswith("data:") and "text_delta" in line:
                break
        cancelled = http.post(f"{MESSAGES}/{stream_id}/cancel").json()
        assert cancelled["cancelled"] is True
        rest = "\n".join(lines)
    payloads = [json.loads(line[6:]) for line in rest.splitlines() if line.startswith("data: ")]
    assert [p["type"] for p in payloads[-3:]] == [
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert payloads[-2]["delta"]["stop_reason"] is None

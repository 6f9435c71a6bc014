"""ui.client.messages on exact Anthropic Messages bytes (named events, blocks, ping)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.ui.client.scripted import Scripted, collect, sse, text_of
from ui.client import BackendHTTPError, ChatClient, ChatRequest, StreamEventError, make_http_client

MID = "msg_01"
REQUEST = ChatRequest(
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
    model="m",
    dialect="messages",
)


def stream_events(stop_reason: str | None = "tool_use") -> list[bytes]:
    payloads: list[dict[str, Any]] = [
        {
            "type": "message_start",
            "message": {
                "id": MID,
                "type": "message",
                "role": "assistant",
                "model": "m",
                "content": [],
                "stop_reason": None,
                "usage": {"input_tokens": 5, "output_tokens": 1},
            },
        },
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Hmm"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "ping"},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": "Grüß"},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": " dich"},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"q": '},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '"sse"}'},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": 8},
        },
        {"type": "message_stop"},
    ]
    return [sse(i + 1, p, p["type"]) for i, p in enumerate(payloads)]


def last_event_id(request: httpx.Request) -> int:
    assert request.url.path == f"/v1/messages/{MID}/events"
    return int(request.headers["last-event-id"])


@pytest.mark.parametrize("chunk", [1, 2, 9, 4096])
async def test_every_block_kind_from_split_bytes(chunk: int) -> None:
    deltas, answer = await collect(
        Scripted(stream_events(), last_event_id, MID, chunk=chunk), REQUEST
    )
    assert text_of(deltas, "content") == answer.text == "Grüß dich"
    assert text_of(deltas, "reasoning") == answer.reasoning == "Hmm"  # the signature is no text
    assert [(c.index, c.id, c.name, c.arguments) for c in answer.tool_calls] == [
        (0, "toolu_1", "lookup", '{"q": "sse"}')
    ]
    first_tool = next(d for d in deltas if d.kind == "tool_call")
    assert (first_tool.tool_id, first_tool.name) == ("toolu_1", "lookup")
    assert answer.stream_id == MID
    assert answer.metrics.finish_reason == "tool_calls"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (5, 8)
    assert [e.kind for e in answer.events if e.event == "ping"] == ["ping"]
    assert answer.events[-1].kind == "done"


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("end_turn", "stop"), ("max_tokens", "length"), (None, "cancelled")],
)
async def test_stop_reasons_map_to_finish_reasons(reason: str | None, finish: str) -> None:
    # None: ssechat's explicit ``stop_reason: null`` at the end of a cancelled stream.
    _, answer = await collect(Scripted(stream_events(reason), last_event_id, MID), REQUEST)
    assert answer.metrics.finish_reason == finish


async def test_request_body_and_x_api_key() -> None:
    server = Scripted(stream_events(), last_event_id, MID)
    await collect(server, REQUEST, api_key="k2")
    start = server.requests[0]
    assert (start.method, start.url.path) == ("POST", "/v1/messages")
    assert start.headers["x-api-key"] == "k2"
    assert "authorization" not in start.headers
    assert start.headers["anthropic-version"]
    body = json.loads(start.content)
    assert body == {
        "messages": [{"role": "user", "content": "Hi?"}],
        "system": "Be brief.",
        "max_tokens": 1024,  # required by the dialect
        "stream": True,
        "model": "m",
    }


@pytest.mark.parametrize("cut", [1, 3, 12])
async def test_resume_with_last_event_id(cut: int) -> None:
    server = Scripted(stream_events(), last_event_id, MID, cut=cut)
    _, answer = await collect(server, REQUEST)
    assert answer.text == "Grüß dich"
    assert server.requests[1].headers["last-event-id"] == str(cut)
    assert [int(e.id) for e in answer.events] == list(range(1, 17))


async def test_error_event_ends_the_stream() -> None:
    events = [
        *stream_events()[:8],
        sse(
            9,
            {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            "error",
        ),
    ]
    with pytest.raises(StreamEventError) as caught:
        await collect(Scripted(events, last_event_id, MID), REQUEST)
    assert caught.value.message == "Overloaded"
    assert caught.value.error_type == "overloaded_error"
    assert caught.value.answer.text == "Grüß"


async def test_cancel_route_and_http_error_shape() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/cancel"):
            return httpx.Response(200, json={"id": MID})
        return httpx.Response(
            400,
            json={
                "type": "error",
                "error": {"type": "invalid_request_error", "message": "max_tokens: required"},
            },
        )

    async with make_http_client("http://fake", transport=httpx.MockTransport(handler)) as http:
        client = ChatClient(http)
        with pytest.raises(BackendHTTPError, match="max_tokens: required") as caught:
            await collect_error(client)
        await client.cancel(MID, dialect="messages")
    assert caught.value.error_type == "invalid_request_error"
    assert calls == ["POST /v1/messages", f"POST /v1/messages/{MID}/cancel"]


async def collect_error(client: ChatClient) -> None:
    async with client.stream_chat(REQUEST) as stream:
        async for _ in stream:
            pass


async def test_non_streamed_message_object() -> None:
    body = {
        "id": MID,
        "type": "message",
        "model": "m",
        "content": [
            {"type": "thinking", "thinking": "Hm", "signature": "s"},
            {"type": "text", "text": "Hello"},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 3, "output_tokens": 4},
    }
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json=body))
    async with make_http_client("http://fake", transport=transport) as http:
        answer = await ChatClient(http).complete(REQUEST)
    assert (answer.text, answer.reasoning) == ("Hello", "Hm")
    assert json.loads(answer.tool_calls[0].arguments) == {"a": 1}
    assert answer.metrics.finish_reason == "tool_calls"
    assert answer.usage is not None
    assert answer.usage.total_tokens == 7

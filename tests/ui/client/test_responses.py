"""ui.client.responses on exact OpenAI Responses API bytes (typed events, sequence numbers)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.ui.client.scripted import Scripted, collect, sse, text_of
from ui.client import Answer, ChatClient, ChatRequest, Delta, StreamEventError, make_http_client

RID = "resp_abc"
REQUEST = ChatRequest(
    messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
    model="m",
    max_tokens=50,
    temperature=0.5,
    dialect="responses",
)


def _response(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": RID, "object": "response", "model": "m", "status": status, **extra}


def stream_events(terminal: dict[str, Any] | None = None) -> list[bytes]:
    """A reasoning item, a message with two text deltas (one emoji), a function call."""
    payloads: list[dict[str, Any]] = [
        {"type": "response.created", "response": _response("in_progress")},
        {"type": "response.in_progress", "response": _response("in_progress")},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {"id": "rs_1", "type": "reasoning", "content": [], "summary": []},
        },
        {
            "type": "response.reasoning_text.delta",
            "item_id": "rs_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "Think",
        },
        {
            "type": "response.reasoning_text.done",
            "item_id": "rs_1",
            "output_index": 0,
            "content_index": 0,
            "text": "Think",
        },
        {
            "type": "response.output_item.added",
            "output_index": 1,
            "item": {"id": "msg_1", "type": "message", "role": "assistant", "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "part": {"type": "output_text", "text": ""},
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "delta": "Hel",
        },
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "delta": "lo 🚀",
        },
        {
            "type": "response.output_text.done",
            "item_id": "msg_1",
            "output_index": 1,
            "content_index": 0,
            "text": "Hello 🚀",
        },
        {
            "type": "response.output_item.added",
            "output_index": 2,
            "item": {
                "id": "fc_1",
                "type": "function_call",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": "",
            },
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 2,
            "delta": '{"city":',
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": "fc_1",
            "output_index": 2,
            "delta": '"Oslo"}',
        },
        {
            "type": "response.function_call_arguments.done",
            "item_id": "fc_1",
            "output_index": 2,
            "arguments": '{"city":"Oslo"}',
        },
        terminal
        or {
            "type": "response.completed",
            "response": _response(
                "completed",
                usage={
                    "input_tokens": 7,
                    "output_tokens": 9,
                    "total_tokens": 16,
                    "output_tokens_details": {"reasoning_tokens": 1},
                },
            ),
        },
    ]
    return [
        sse(seq + 1, {**payload, "sequence_number": seq}, payload["type"])
        for seq, payload in enumerate(payloads)
    ]


def starting_after(request: httpx.Request) -> int:
    """Index of the first event to replay: the one after sequence number N."""
    assert request.url.path == f"/v1/responses/{RID}"
    assert request.url.params["stream"] == "true"
    return int(request.url.params.get("starting_after", "-1")) + 1


@pytest.mark.parametrize("chunk", [1, 3, 7, 4096])
async def test_every_delta_kind_from_split_bytes(chunk: int) -> None:
    server = Scripted(stream_events(), starting_after, RID, chunk=chunk)
    deltas, answer = await collect(server, REQUEST)
    assert text_of(deltas, "content") == answer.text == "Hello 🚀"  # *.done not added again
    assert text_of(deltas, "reasoning") == answer.reasoning == "Think"
    assert [(c.index, c.id, c.name, c.arguments) for c in answer.tool_calls] == [
        (0, "call_1", "get_weather", '{"city":"Oslo"}')
    ]
    assert answer.stream_id == RID
    assert answer.model == "m"
    assert answer.dialect == "responses"
    assert answer.metrics.finish_reason == "tool_calls"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (7, 9)
    assert answer.usage.reasoning_tokens == 1
    assert next(e.event for e in answer.events) == "response.created"
    kinds = {e.kind for e in answer.events}
    assert {"meta", "reasoning", "content", "tool_call", "finish"} <= kinds
    # One token count: every text-bearing delta, as the timeline plots it.
    assert answer.metrics.tokens == len(answer.metrics.token_times_s) == 5


async def test_request_body_and_auth() -> None:
    server = Scripted(stream_events(), starting_after, RID)
    await collect(server, REQUEST, api_key="k1")
    start = server.requests[0]
    assert (start.method, start.url.path) == ("POST", "/v1/responses")
    assert start.headers["authorization"] == "Bearer k1"
    assert json.loads(start.content) == {
        "input": [{"role": "user", "content": "Hi?"}],
        "instructions": "Be brief.",
        "stream": True,
        "max_output_tokens": 50,
        "model": "m",
        "temperature": 0.5,
    }


@pytest.mark.parametrize("cut", [0, 1, 8, 12])
async def test_resume_with_starting_after_the_last_sequence_number(cut: int) -> None:
    events = stream_events()
    server = Scripted(events, starting_after, RID, cut=cut)
    _deltas, answer = await collect(server, REQUEST)
    assert answer.text == "Hello 🚀"
    assert answer.tool_calls[0].arguments == '{"city":"Oslo"}'
    resume = server.requests[1]
    assert resume.method == "GET"
    if cut == 0:
        assert "starting_after" not in resume.url.params  # nothing seen: from the start
    else:
        assert resume.url.params["starting_after"] == str(cut - 1)
    assert [int(e.id) for e in answer.events] == list(range(1, len(events) + 1))
    assert answer.metrics.reconnects == 1


async def test_a_resume_after_the_final_event_gets_204_and_finishes() -> None:
    events = stream_events()[:-1]  # the terminal event was lost with the connection
    server = Scripted(events, starting_after, RID, cut=len(events))
    _, answer = await collect(server, REQUEST)
    assert answer.text == "Hello 🚀"
    assert server.requests[-1].method == "GET"
    assert len(server.requests) == 2


async def test_incomplete_is_finish_length() -> None:
    terminal = {
        "type": "response.incomplete",
        "response": _response("incomplete", incomplete_details={"reason": "max_output_tokens"}),
    }
    _, answer = await collect(Scripted(stream_events(terminal), starting_after, RID), REQUEST)
    assert answer.metrics.finish_reason == "length"


async def test_error_event_raises_with_the_partial_answer() -> None:
    events = [
        *stream_events()[:9],
        sse(
            10,
            {"type": "error", "code": "server_error", "message": "boom", "sequence_number": 9},
            "error",
        ),
        sse(
            11,
            {
                "type": "response.failed",
                "sequence_number": 10,
                "response": _response("failed", error={"code": "server_error", "message": "boom"}),
            },
            "response.failed",
        ),
    ]
    with pytest.raises(StreamEventError) as caught:
        await collect(Scripted(events, starting_after, RID), REQUEST)
    assert caught.value.message == "boom"
    assert caught.value.code == "server_error"
    assert caught.value.answer.text == "Hello 🚀"
    assert caught.value.answer.metrics.finish_reason == "error"
    assert caught.value.answer.events[-1].kind == "error"


async def test_cancel_posts_to_the_responses_cancel_route() -> None:
    server = Scripted(stream_events(), starting_after, RID, chunk=1)
    transport = httpx.MockTransport(server.handler)
    items: list[Delta | Answer] = []
    async with (
        make_http_client("http://fake", transport=transport) as http,
        ChatClient(http).stream_chat(REQUEST) as stream,
    ):
        async for item in stream:
            items.append(item)
            if isinstance(item, Delta) and item.kind == "content":
                await stream.cancel()
    last = items[-1]
    assert isinstance(last, Answer)
    assert last.cancelled
    assert last.metrics.finish_reason == "cancelled"
    assert last.text == "Hel"
    assert server.requests[-1].url.path == f"/v1/responses/{RID}/cancel"


async def test_non_streamed_response_object() -> None:
    body = _response(
        "completed",
        output=[
            {
                "type": "reasoning",
                "id": "rs_1",
                "content": [{"type": "reasoning_text", "text": "Hm"}],
            },
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello", "annotations": []}],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        ],
        usage={"input_tokens": 3, "output_tokens": 4, "total_tokens": 7},
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is False
        return httpx.Response(200, json=body)

    async with make_http_client("http://fake", transport=httpx.MockTransport(handler)) as http:
        answer = await ChatClient(http).complete(REQUEST)
    assert (answer.text, answer.reasoning) == ("Hello", "Hm")
    assert answer.tool_calls[0].name == "f"
    assert answer.metrics.finish_reason == "tool_calls"
    assert answer.metrics.tokens == 4
    assert not answer.metrics.streamed

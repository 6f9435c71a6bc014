"""ui.client.chat on exact Chat Completions bytes: every delta kind, split anywhere."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.ui.client.scripted import Scripted, collect, sse, text_of
from ui.client import ChatClient, ChatRequest, make_http_client

CID = "chatcmpl-x"
REQUEST = ChatRequest(messages=[{"role": "user", "content": "Weather?"}])


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": CID,
        "object": "chat.completion.chunk",
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def stream_events(
    reasoning_field: str = "reasoning_content", finish: str = "tool_calls"
) -> list[bytes]:
    payloads: list[Any] = [
        chunk({"role": "assistant", "content": ""}),
        chunk({reasoning_field: "Let me "}),
        chunk({reasoning_field: "see."}),
        chunk({"content": "Calling"}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "weather", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': "Oslo"}'}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "time", "arguments": "{}"},
                    }
                ]
            }
        ),
        chunk({}, finish),
        {
            "id": CID,
            "object": "chat.completion.chunk",
            "model": "m",
            "choices": [],
            "usage": {
                "prompt_tokens": 4,
                "completion_tokens": 9,
                "total_tokens": 13,
                "completion_tokens_details": {"reasoning_tokens": 2},
            },
        },
        "[DONE]",
    ]
    return [sse(i + 1, p) for i, p in enumerate(payloads)]


def last_event_id(request: httpx.Request) -> int:
    assert request.url.path == f"/v1/chat/completions/{CID}/events"
    return int(request.headers["last-event-id"])


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
@pytest.mark.parametrize("size", [1, 4, 11, 4096])
async def test_every_delta_kind_from_split_bytes(field: str, size: int) -> None:
    deltas, answer = await collect(
        Scripted(stream_events(field), last_event_id, CID, chunk=size), REQUEST
    )
    assert text_of(deltas, "reasoning") == answer.reasoning == "Let me see."
    assert text_of(deltas, "content") == answer.text == "Calling"
    assert [(c.index, c.id, c.name, c.arguments) for c in answer.tool_calls] == [
        (0, "call_a", "weather", '{"city": "Oslo"}'),
        (1, "call_b", "time", "{}"),
    ]
    assert answer.metrics.finish_reason == "tool_calls"
    assert answer.usage is not None
    assert answer.usage.reasoning_tokens == 2
    assert [e.kind for e in answer.events] == [
        "meta", "reasoning", "reasoning", "content", "tool_call", "tool_call", "tool_call",
        "tool_call", "finish", "usage", "done",
    ]  # fmt: skip
    assert answer.metrics.reasoning_s is not None


async def test_a_server_emitting_both_reasoning_fields_is_read_once() -> None:
    events = [
        sse(1, chunk({"reasoning_content": "Hm", "reasoning": "Hm"})),
        sse(2, chunk({"content": "ok"}, "stop")),
        sse(3, "[DONE]"),
    ]
    _, answer = await collect(Scripted(events, last_event_id, CID), REQUEST)
    assert answer.reasoning == "Hm"


@pytest.mark.parametrize("finish", ["stop", "length", "content_filter", "cancelled", "error"])
async def test_finish_reasons_and_refusal(finish: str) -> None:
    events = [
        sse(1, chunk({"refusal": "I can't help with that."})),
        sse(2, chunk({}, finish)),
        sse(3, "[DONE]"),
    ]
    deltas, answer = await collect(Scripted(events, last_event_id, CID), REQUEST)
    assert answer.refusal == text_of(deltas, "refusal") == "I can't help with that."
    assert answer.metrics.finish_reason == finish
    assert answer.cancelled == (finish == "cancelled")


@pytest.mark.parametrize("cut", [2, 5, 6, 10])
async def test_resume_in_the_middle_of_reasoning_or_a_tool_call(cut: int) -> None:
    server = Scripted(stream_events(), last_event_id, CID, cut=cut)
    _, answer = await collect(server, REQUEST)
    assert answer.reasoning == "Let me see."
    assert answer.tool_calls[0].arguments == '{"city": "Oslo"}'
    assert [int(e.id) for e in answer.events] == list(range(1, 12))


async def test_resume_after_the_end_gets_204_and_finishes() -> None:
    events = stream_events()[:-1]
    server = Scripted(events, last_event_id, CID, cut=len(events))
    _, answer = await collect(server, REQUEST)
    assert answer.tool_calls[1].name == "time"
    assert len(server.requests) == 2


async def test_non_streamed_message_with_tool_calls_and_reasoning() -> None:
    body = {
        "id": CID,
        "object": "chat.completion",
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "reasoning_content": "Hm",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is False
        return httpx.Response(200, json=body)

    async with make_http_client("http://fake", transport=httpx.MockTransport(handler)) as http:
        answer = await ChatClient(http).complete(REQUEST)
    assert answer.reasoning == "Hm"
    assert answer.text == ""
    assert answer.tool_calls[0].id == "c1"
    assert answer.metrics.tokens == 2

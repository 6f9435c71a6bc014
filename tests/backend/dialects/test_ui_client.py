"""The UI's own client (``ui.client``) reads what our Responses and Messages routes stream:
the backend and the UI agree on both dialects, every delta kind, resume and cancel."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backend.engines.base import Engine
from tests.backend.dialects.helpers import QUESTION, SIMULATED, SLOW, SYSTEM, dialect_server
from tests.ui.client.scripted import read_answer
from ui.client import ChatClient, ChatRequest, Delta, make_http_client
from ui.client.models import DialectName

MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    running: tuple[str, list[Engine]]
    with dialect_server(fault_close_after_events=9, retry_ms=50) as running:
        yield running[0]


@pytest.mark.parametrize("dialect", ["responses", "messages"])
async def test_text_equals_chat_completions_through_a_dropped_connection(
    url: str, dialect: DialectName
) -> None:
    # The server drops every response after 9 events: the client resumes each time.
    async with make_http_client(url) as http:
        client = ChatClient(http)
        reference = await client.complete(
            ChatRequest(messages=MESSAGES, model=SIMULATED, max_tokens=40)
        )
        request = ChatRequest(messages=MESSAGES, model=SIMULATED, max_tokens=40, dialect=dialect)
        deltas, answer = await read_answer(client, request)
        whole = await client.complete(request)
    assert answer.metrics.reconnects >= 2
    assert [int(event.id) for event in answer.events] == list(range(1, len(answer.events) + 1))
    assert answer.text == "".join(d.text for d in deltas) == reference.text == whole.text
    assert answer.metrics.finish_reason == whole.metrics.finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 40


@pytest.mark.parametrize("dialect", ["responses", "messages"])
async def test_reasoning_and_tool_calls(url: str, dialect: DialectName) -> None:
    request = ChatRequest(
        messages=[{"role": "user", "content": "x"}], model="scripted-every-kind", dialect=dialect
    )
    async with make_http_client(url) as http:
        _, answer = await read_answer(ChatClient(http), request)
    assert answer.reasoning == "Let me think."
    assert answer.text == 'Hello 🚀 "world"'
    assert [(c.id, c.name, c.arguments) for c in answer.tool_calls] == [
        ("call_a", "get_weather", '{"city":"Oslo"}'),
        ("call_b", "get_time", "{}"),
    ]
    assert answer.metrics.finish_reason == "tool_calls"


@pytest.mark.parametrize("dialect", ["responses", "messages"])
async def test_cancel_through_the_dialect_s_route(url: str, dialect: DialectName) -> None:
    request = ChatRequest(messages=MESSAGES, model=SLOW, max_tokens=400, dialect=dialect)
    async with make_http_client(url) as http:
        client = ChatClient(http)
        text = ""
        async with client.stream_chat(request) as stream:
            async for item in stream:
                if isinstance(item, Delta):
                    text += item.text
                    if item.kind == "content" and stream.stream_id is not None:
                        await client.cancel(stream.stream_id, dialect=dialect)
                else:
                    answer = item
    assert answer.text == text
    assert 0 < answer.metrics.tokens < 400

"""ui/client.py against a live backend on a real socket (and a byte-exact fake for edge cases)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from backend.app import create_app
from tests.servers import free_port, serve_app
from tests.ui.client.scripted import read_answer
from tests.ui.conftest import backend_settings
from tests.ui.helpers import cancelled_by_request
from ui.client import (
    Answer,
    BackendHTTPError,
    BackendUnreachableError,
    ChatClient,
    ChatClientError,
    ChatRequest,
    ChatStream,
    ConnectionLostError,
    Delta,
    StreamEventError,
    make_http_client,
)

QUESTION = [{"role": "user", "content": "How do Server-Sent Events work?"}]


def assert_contiguous_ids(answer: Answer) -> None:
    ids = [int(event.id) for event in answer.events]
    assert ids == list(range(1, len(ids) + 1)), ids


async def test_deltas_join_to_the_non_streamed_text(backend_url: str) -> None:
    request = ChatRequest(messages=QUESTION, max_tokens=40, seed=7)
    async with make_http_client(backend_url) as http:
        client = ChatClient(http)
        deltas, answer = await read_answer(client, request)
        reference = await client.complete(request)

    assert reference.text
    assert "".join(d.text for d in deltas) == answer.text == reference.text
    assert answer.stream_id is not None
    assert answer.stream_id.startswith("chatcmpl-")
    assert answer.events[-1].data == "[DONE]"
    assert_contiguous_ids(answer)
    metrics = answer.metrics
    assert metrics.streamed
    assert not reference.metrics.streamed
    assert metrics.ttft_s is not None
    assert 0 < metrics.ttft_s <= metrics.duration_s
    assert metrics.tokens == len(deltas) == 40
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 40
    assert metrics.tokens_per_s is not None
    assert metrics.tokens_per_s > 0
    assert list(metrics.token_times_s) == sorted(metrics.token_times_s)
    assert metrics.finish_reason == "length"
    assert metrics.reconnects == 0
    assert reference.metrics.tokens == 40


async def test_http_errors_raise_with_the_servers_message(backend_url: str) -> None:
    body = {"messages": QUESTION, "model": "no-such-model", "stream": True}
    async with make_http_client(backend_url) as http:
        raw = await http.post("/v1/chat/completions", json=body)
        client = ChatClient(http)
        request = ChatRequest(messages=QUESTION, model="no-such-model")
        with pytest.raises(BackendHTTPError) as streamed:
            await read_answer(client, request)
        with pytest.raises(BackendHTTPError) as non_streamed:
            await client.complete(request)

    expected = raw.json()["error"]
    assert raw.status_code >= 400
    for error in (streamed.value, non_streamed.value):
        assert error.status_code == raw.status_code
        assert error.server_message == expected["message"]
        assert error.code == expected["code"]
        assert expected["message"] in str(error)


async def test_error_event_mid_stream_raises_with_partial_answer(backend_url: str) -> None:
    async with make_http_client(backend_url) as http:
        client = ChatClient(http)
        with pytest.raises(StreamEventError) as caught:
            await read_answer(client, ChatRequest(messages=QUESTION, model="failing"))
    error = caught.value
    assert "model backend went away" in error.message
    assert error.answer.text == " t0 t1 t2"  # what arrived before the error is kept
    assert error.answer.metrics.finish_reason == "error"


async def test_unreachable_backend_is_a_clear_error() -> None:
    async with make_http_client(f"http://127.0.0.1:{free_port()}") as http:
        client = ChatClient(http)
        with pytest.raises(BackendUnreachableError, match="cannot reach the backend"):
            await read_answer(client, ChatRequest(messages=QUESTION))
        with pytest.raises(BackendUnreachableError):
            await client.models()


async def test_models_and_health(backend_url: str) -> None:
    async with make_http_client(backend_url) as http:
        client = ChatClient(http)
        models = await client.models()
        health = await client.health()
    assert health["status"] == "ok"
    assert health["engine"] == "simulated"
    assert health["model"] in models
    assert "failing" in models


async def _metrics(http: httpx.AsyncClient) -> str:
    return (await http.get("/metrics")).text


async def test_cancel_ends_the_stream_and_stops_the_server(backend_url: str) -> None:
    request = ChatRequest(messages=QUESTION, max_tokens=2000)  # 40 s at 50 tokens/s
    async with make_http_client(backend_url) as http:
        client = ChatClient(http)
        before = cancelled_by_request(await _metrics(http))
        texts: list[str] = []
        final: Answer | None = None
        async with client.stream_chat(request) as stream:
            async for item in stream:
                if isinstance(item, Delta):
                    texts.append(item.text)
                    if len(texts) == 3:
                        await stream.cancel()
                else:
                    final = item
        after = cancelled_by_request(await _metrics(http))
        assert final is not None
        assert final.cancelled
        assert final.metrics.tokens < 2000
        assert after == before + 1
        # The server really stopped: the stream ends at once when re-attached.
        assert stream.stream_id is not None
        async with http.stream(
            "GET",
            f"/v1/chat/completions/{stream.stream_id}/events",
            headers={"Last-Event-ID": "0"},
        ) as replay:
            body = (await replay.aread()).decode()
        assert body.rstrip().endswith("data: [DONE]")


async def test_leaving_the_stream_early_cancels_on_the_server(backend_url: str) -> None:
    request = ChatRequest(messages=QUESTION, max_tokens=2000)
    async with make_http_client(backend_url) as http:
        client = ChatClient(http)
        before = cancelled_by_request(await _metrics(http))
        async with client.stream_chat(request) as stream:
            async for item in stream:
                if isinstance(item, Delta):
                    break
        assert cancelled_by_request(await _metrics(http)) == before + 1


async def test_task_cancellation_cancels_on_the_server(backend_url: str) -> None:
    """What Gradio's Stop does: cancel the task that is reading the stream."""
    request = ChatRequest(messages=QUESTION, max_tokens=2000)
    first = asyncio.Event()

    async def consume(client: ChatClient) -> None:
        async with client.stream_chat(request) as stream:
            async for _ in stream:
                first.set()

    async with make_http_client(backend_url) as http:
        client = ChatClient(http)
        before = cancelled_by_request(await _metrics(http))
        task = asyncio.create_task(consume(client))
        await first.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert cancelled_by_request(await _metrics(http)) == before + 1


async def test_stop_before_the_stream_starts_sends_nothing() -> None:
    requests: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(500)

    transport = httpx.MockTransport(refuse)
    async with make_http_client("http://fake", transport=transport) as http:
        stream = ChatClient(http).stream_chat(ChatRequest(messages=QUESTION))
        await stream.cancel()
        items = [item async for item in stream]
    assert requests == []
    assert len(items) == 1
    assert isinstance(items[0], Answer)
    assert items[0].cancelled
    assert items[0].metrics.finish_reason == "cancelled"


async def test_stop_while_connecting_cancels_once_the_server_names_the_stream(
    backend_url: str,
) -> None:
    """Stop pressed before the response headers (no stream id yet): the cancel goes out
    as soon as the id is known, so the generation does not run on unattended."""
    connecting = asyncio.Event()
    release = asyncio.Event()

    class Gated(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/v1/chat/completions":
                connecting.set()
                await release.wait()
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    request = ChatRequest(messages=QUESTION, max_tokens=2000)
    async with make_http_client(backend_url, transport=Gated()) as http:
        before = cancelled_by_request(await _metrics(http))
        stream = ChatClient(http).stream_chat(request)
        iterating = asyncio.create_task(_drain(stream))
        await connecting.wait()
        await stream.cancel()  # no id yet: nothing can be sent
        assert cancelled_by_request(await _metrics(http)) == before
        release.set()
        answer = await iterating
        assert answer.cancelled
        assert stream.stream_id is not None
        assert cancelled_by_request(await _metrics(http)) == before + 1


async def _drain(stream: ChatStream) -> Answer:
    async with stream:
        items = [item async for item in stream]
    final = items[-1]
    assert isinstance(final, Answer)
    return final


async def test_keepalive_pings_are_ignored_and_keep_the_read_alive(backend_url: str) -> None:
    """Tokens 1.5 s apart, pings every 0.2 s, read timeout 1 s: no reconnect, no lost text."""
    request = ChatRequest(messages=QUESTION, max_tokens=3, seed=3)
    app = create_app(backend_settings(sim_tokens_per_s=0.66, keepalive_s=0.2))
    with serve_app(app) as url:
        async with make_http_client(url) as http:
            deltas, answer = await read_answer(ChatClient(http, read_timeout_s=1.0), request)
            reference = await ChatClient(http).complete(request)  # silent for 4.5 s
    assert answer.text == reference.text == "".join(d.text for d in deltas)
    assert answer.metrics.reconnects == 0
    assert all(event.data for event in answer.events)  # empty keep-alive events were dropped


async def test_resume_after_dropped_connections(faulty_backend_url: str) -> None:
    """Every response is cut after 3 events; the client re-attaches with Last-Event-ID."""
    request = ChatRequest(messages=QUESTION, max_tokens=30, seed=11)
    async with make_http_client(faulty_backend_url) as http:
        client = ChatClient(http)
        deltas, answer = await read_answer(client, request)
        reference = await client.complete(request)
    assert answer.text == reference.text == "".join(d.text for d in deltas)
    assert answer.metrics.reconnects >= 5
    assert_contiguous_ids(answer)  # nothing duplicated, nothing missing
    assert {event.connection for event in answer.events} == set(
        range(answer.metrics.reconnects + 1)
    )


async def test_stream_chat_request_body() -> None:
    request = ChatRequest(messages=QUESTION, model="m", temperature=0.5, max_tokens=9)
    body = request.body(stream=True)
    assert body == {
        "messages": QUESTION,
        "stream": True,
        "stream_options": {"include_usage": True},
        "model": "m",
        "temperature": 0.5,
        "max_tokens": 9,
    }
    assert "stream_options" not in request.body(stream=False)


# --------------------------------------------------------------------------- byte-exact fake
# A scripted server through httpx.MockTransport: exact bytes, split at awkward
# places, replays that overlap, connections that break mid-event.


def _chunk(text: str) -> str:
    return (
        '{"id":"chatcmpl-fake","object":"chat.completion.chunk","model":"fake",'
        '"choices":[{"index":0,"delta":{"content":' + json.dumps(text) + '},"finish_reason":null}]}'
    )


def _event(seq: int, data: str) -> bytes:
    return f"id: {seq}\ndata: {data}\n\n".encode()


TOKENS = ["Hel", "lo", ", wor", "ld ", "🚀", "!"]
EVENTS = [_event(i + 1, _chunk(t)) for i, t in enumerate(TOKENS)] + [
    _event(len(TOKENS) + 1, "[DONE]")
]


def _split_bytes(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class ScriptedServer:
    """POST sends events 1..3 (with retry, a comment and split bytes) then breaks;
    GET /events replays from one event *before* Last-Event-ID (an overlap the client
    must drop) and completes."""

    def __init__(self) -> None:
        self.resume_headers: list[str | None] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream", "x-stream-id": "chatcmpl-fake"}
        if request.method == "POST":
            body = b"retry: 10\n\n: ping\n\n" + b"".join(EVENTS[:3]) + b": ping\n\n"
            return httpx.Response(200, headers=headers, stream=_Broken(_split_bytes(body, 7)))
        self.resume_headers.append(request.headers.get("last-event-id"))
        last = int(request.headers["last-event-id"])
        replay = b"".join(EVENTS[last - 1 :])  # one duplicate on purpose
        return httpx.Response(200, headers=headers, stream=_Chunks(_split_bytes(replay, 5)))


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk


class _Broken(_Chunks):
    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in super().__aiter__():
            yield chunk
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


async def test_resume_against_scripted_bytes_drops_duplicates_and_comments() -> None:
    server = ScriptedServer()
    transport = httpx.MockTransport(server.handler)
    async with make_http_client("http://fake", transport=transport) as http:
        deltas, answer = await read_answer(ChatClient(http), ChatRequest(messages=QUESTION))
    assert "".join(d.text for d in deltas) == answer.text == "".join(TOKENS)
    assert server.resume_headers == ["3"]
    assert answer.metrics.reconnects == 1
    assert_contiguous_ids(answer)


async def test_a_gap_in_event_ids_is_an_error_not_silent_loss() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream", "x-stream-id": "chatcmpl-fake"}
        body = EVENTS[0] + EVENTS[2]  # id 2 is missing
        return httpx.Response(200, headers=headers, content=body)

    async with make_http_client("http://fake", transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(ConnectionLostError, match="expected id 2, got 3"):
            await read_answer(ChatClient(http), ChatRequest(messages=QUESTION))


async def test_reconnects_are_bounded() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        headers = {"content-type": "text/event-stream", "x-stream-id": "chatcmpl-fake"}
        first = b"retry: 1\n" + EVENTS[0] if request.method == "POST" else b""
        return httpx.Response(200, headers=headers, content=first)  # ends without [DONE]

    async with make_http_client("http://fake", transport=httpx.MockTransport(handler)) as http:
        client = ChatClient(http, max_reconnects=3)
        with pytest.raises(ConnectionLostError, match="reconnects") as caught:
            await read_answer(client, ChatRequest(messages=QUESTION))
    resume = "GET /v1/chat/completions/chatcmpl-fake/events"
    assert calls == [
        "POST /v1/chat/completions",
        *[resume] * 4,  # the first re-attach plus 3 more that brought nothing
        "POST /v1/chat/completions/chatcmpl-fake/cancel",  # giving up stops the generation
    ]
    assert caught.value.answer.text == TOKENS[0]


async def test_a_response_that_is_not_an_event_stream_is_a_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/html"}, content=b"<html>")

    async with make_http_client("http://fake", transport=httpx.MockTransport(handler)) as http:
        with pytest.raises(ChatClientError, match="did not answer with an event stream"):
            await read_answer(ChatClient(http), ChatRequest(messages=QUESTION))

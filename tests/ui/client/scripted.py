"""A scripted SSE server for the parser tests: exact bytes, split at awkward places.

Through ``httpx.MockTransport``: the point here is the client's parsing and
its reconnect decisions on byte-exact input (as httpx-sse's own tests do);
the real-socket behaviour is covered against the live backend in test_api.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from ui.client import Answer, ChatClient, ChatRequest, Delta, make_http_client


def sse(seq: int | None, data: Any, event: str | None = None) -> bytes:
    """One event as the backend frames it (``event:`` then ``id:`` then one ``data:`` line)."""
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if seq is not None:
        lines.append(f"id: {seq}")
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    lines.append(f"data: {text}")
    return ("\n".join(lines) + "\n\n").encode()


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes], *, broken: bool = False) -> None:
        self._chunks = chunks
        self._broken = broken

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self._chunks:
            yield chunk
        if self._broken:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


@dataclass
class Scripted:
    """The start request gets ``events[:cut]`` then a broken connection (or all of them if
    ``cut`` is None); a resume gets the events after the position ``resume_from`` reads from
    the request, or 204 once nothing is left."""

    events: list[bytes]
    resume_from: Callable[[httpx.Request], int]
    stream_id: str
    cut: int | None = None
    chunk: int = 7
    requests: list[httpx.Request] = field(default_factory=list)

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        headers = {"content-type": "text/event-stream", "x-stream-id": self.stream_id}
        if request.url.path.endswith("/cancel"):
            return httpx.Response(200, json={"id": self.stream_id})
        if request.method == "POST":
            if self.cut is None:
                body = b"retry: 10\n\n" + b"".join(self.events)
                return httpx.Response(200, headers=headers, stream=Chunks(split(body, self.chunk)))
            body = b"retry: 10\n\n: ping\n\n" + b"".join(self.events[: self.cut])
            return httpx.Response(
                200, headers=headers, stream=Chunks(split(body, self.chunk), broken=True)
            )
        start = self.resume_from(request)
        if start >= len(self.events):
            return httpx.Response(204)
        body = b"".join(self.events[start:])
        return httpx.Response(200, headers=headers, stream=Chunks(split(body, 5)))


async def read_answer(client: ChatClient, request: ChatRequest) -> tuple[list[Delta], Answer]:
    """Every delta of one stream, then its one final ``Answer``."""
    deltas: list[Delta] = []
    answers: list[Answer] = []
    async with client.stream_chat(request) as stream:
        async for item in stream:
            if isinstance(item, Delta):
                assert not answers, "a delta arrived after the final Answer"
                deltas.append(item)
            else:
                answers.append(item)
    assert len(answers) == 1, "exactly one Answer ends the stream"
    return deltas, answers[0]


async def collect(
    server: Scripted, request: ChatRequest, api_key: str | None = None
) -> tuple[list[Delta], Answer]:
    transport = httpx.MockTransport(server.handler)
    async with make_http_client("http://fake", transport=transport) as http:
        return await read_answer(ChatClient(http, api_key=api_key), request)


def text_of(deltas: list[Delta], kind: str) -> str:
    return "".join(d.text for d in deltas if d.kind == kind)

"""A third-party EventSource client (aiohttp-sse-client) completes a stream the server
keeps cutting, with nothing but its own reconnection and ``Last-Event-ID``.

The server closes every SSE response after a few events (the test-only
fault switch), as a flaky network would. The client follows the stream's
``/events`` URL like a browser EventSource: it reconnects after each cut,
honouring ``retry:``, sends the last id it saw, and stops at the 204 the
server answers once nothing is left (this client raises on any non-200
status; for it, that is the stop). It must get every event exactly once,
in order, and the same text as an uncut answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import aiohttp
import httpx
import pytest
from aiohttp_sse_client.client import EventSource, MessageEvent

from backend.app import create_app
from backend.config import Settings
from tests.servers import serve_app

CHAT = "/v1/chat/completions"
CUT_AFTER = 4
BODY = {"messages": [{"role": "user", "content": "a cut stream"}], "seed": 11, "max_tokens": 30}


@pytest.fixture
def base_url() -> Iterator[str]:
    settings = Settings(
        engine="simulated",
        sim_tokens_per_s=100.0,
        sim_fill_max_tokens=True,
        fault_close_after_events=CUT_AFTER,
        retry_ms=20,
    )
    with serve_app(create_app(settings)) as url:
        yield url


def text_of(events: list[MessageEvent]) -> str:
    parts = []
    for event in events:
        if event.data != "[DONE]":
            choices = json.loads(event.data)["choices"]
            if choices:
                parts.append(choices[0]["delta"].get("content") or "")
    return "".join(parts)


async def test_aiohttp_sse_client_completes_a_cut_stream_and_stops_at_204(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        uncut = (await http.post(CHAT, json=BODY)).json()["choices"][0]["message"]["content"]
        async with http.stream("POST", CHAT, json={**BODY, "stream": True}) as started:
            stream_id = started.headers["x-stream-id"]  # the server cuts this one too

    events: list[MessageEvent] = []
    opened = 0

    def on_open() -> None:
        nonlocal opened
        opened += 1

    async def follow(session: aiohttp.ClientSession) -> None:
        url = f"{base_url}{CHAT}/{stream_id}/events"
        async with EventSource(url, session=session, on_open=on_open) as source:
            async for event in source:
                events.append(event)

    async with aiohttp.ClientSession() as session:
        with pytest.raises(ConnectionAbortedError, match="204"):
            await follow(session)

    ids = [int(event.last_event_id) for event in events]
    assert ids == list(range(1, len(ids) + 1))  # every event once, in order
    assert events[-1].data == "[DONE]"
    assert text_of(events) == uncut
    assert opened >= len(events) // CUT_AFTER  # it really was cut and resumed

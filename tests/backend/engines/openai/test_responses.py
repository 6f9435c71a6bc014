"""The ``openai`` engine's native Responses relay (backend/engines/openai/responses.py)
against the scripted upstream: whether the upstream speaks the API, and its events."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from backend.engines.openai import UpstreamError
from tests.backend.engines.openai.helpers import Upstream, make_engine, wait_disconnected

CREATED = {"type": "response.created", "response": {"id": "resp_up", "status": "in_progress"}}
DELTA = {"type": "response.output_text.delta", "item_id": "msg_up", "delta": "Hi"}
COMPLETED = {"type": "response.completed", "response": {"id": "resp_up", "status": "completed"}}


def probes(upstream: Upstream) -> int:
    return sum(request.path.endswith("/v1/responses") for request in upstream.app.requests)


@pytest.mark.parametrize(("scenario", "speaks"), [("responses", True), ("ok", False)])
async def test_auto_asks_the_upstream_once(
    upstream: Upstream, client: httpx.AsyncClient, scenario: str, speaks: bool
) -> None:
    engine = make_engine(client, upstream.url(scenario), responses="auto")
    assert [await engine.speaks_responses() for _ in range(3)] == [speaks] * 3
    assert probes(upstream) == 1


async def test_an_unclear_answer_settles_nothing(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    engine = make_engine(client, upstream.url("status-503"), responses="auto")
    assert [await engine.speaks_responses() for _ in range(2)] == [False, False]
    assert probes(upstream) == 2  # asked again: a 503 says nothing about the route
    unreachable = make_engine(client, "http://127.0.0.1:9/v1", responses="auto")
    assert await unreachable.speaks_responses() is False


@pytest.mark.parametrize(("mode", "speaks"), [("on", True), ("off", False)])
async def test_on_and_off_ask_nothing(
    upstream: Upstream, client: httpx.AsyncClient, mode: str, speaks: bool
) -> None:
    engine = make_engine(client, upstream.url("ok"), responses=mode)
    assert await engine.speaks_responses() is speaks
    assert probes(upstream) == 0


async def relay(
    upstream: Upstream, client: httpx.AsyncClient, events: list[Any]
) -> list[dict[str, Any]]:
    engine = make_engine(client, upstream.url("responses"))
    body = {"model": "m", "input": "x", "stream": True, "x_events": events}
    return [event async for event in engine.responses_events(body)]


async def test_events_come_as_sent_up_to_the_terminal_one(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    events = await relay(upstream, client, [CREATED, DELTA, COMPLETED, DELTA])
    assert events == [CREATED, DELTA, COMPLETED]
    sent = upstream.last()
    assert sent.body["stream"] is True
    assert sent.body["x_events"]  # the body as given, unknown fields included


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([CREATED, DELTA], "upstream_incomplete"),
        ([], "upstream_malformed"),
        ([CREATED, "not json"], "upstream_malformed"),
        ([CREATED, '{"delta": "no type"}'], "upstream_malformed"),
    ],
)
async def test_a_broken_stream_is_an_upstream_error(
    upstream: Upstream, client: httpx.AsyncClient, events: list[Any], code: str
) -> None:
    with pytest.raises(UpstreamError) as caught:
        await relay(upstream, client, events)
    assert caught.value.code == code


async def test_an_error_status_is_an_upstream_error_and_a_stop_closes_the_connection(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    engine = make_engine(client, upstream.url("status-400"))
    with pytest.raises(UpstreamError) as caught:
        async for _ in engine.responses_events({"model": "m", "input": "x", "stream": True}):
            pass
    assert (caught.value.code, caught.value.status) == ("upstream_bad_request", 400)
    stream = make_engine(client, upstream.url("responses")).responses_events(
        {"model": "m", "input": "x", "stream": True, "x_events": [CREATED, DELTA], "x_hold": True}
    )
    assert (await anext(stream))["type"] == "response.created"
    await stream.aclose()
    assert await wait_disconnected(upstream.last())

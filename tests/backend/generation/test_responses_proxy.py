"""A relayed response (backend/generation/responses_proxy.py): an upstream's events in,
the same events out under ssechat's id and numbering, with ssechat's endings.

The upstream's events are given as a list (what the engine's relay yields); the
store is a list of the snapshots recorded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pytest

from backend.engines.base import EngineError
from backend.generation.responses_proxy import ProxiedResponsesGeneration
from backend.hub.base import Event, Produced

BASE = {
    "id": "resp_ours",
    "object": "response",
    "status": "in_progress",
    "background": False,
    "store": True,
    "previous_response_id": "resp_before",
    "output": [],
    "usage": None,
}
UPSTREAM_RESPONSE = {
    "id": "resp_upstream",
    "object": "response",
    "status": "in_progress",
    "background": False,
    "previous_response_id": None,
    "model": "m",
    "output": [],
    "service_tier": "flex",  # a field ssechat does not model
}
TEXT_ITEM = {"id": "msg_up", "type": "message", "status": "in_progress", "role": "assistant"}


def opened(seq: int) -> list[dict[str, Any]]:
    """created, in_progress, a message item and its text part (numbered upstream-side)."""
    return [
        {"type": "response.created", "response": UPSTREAM_RESPONSE, "sequence_number": seq},
        {"type": "response.in_progress", "response": UPSTREAM_RESPONSE, "sequence_number": seq},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**TEXT_ITEM, "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": "msg_up",
            "output_index": 0,
            "content_index": 0,
            "part": {"type": "output_text", "text": "", "annotations": []},
            "obfuscation": "abc",  # a field ssechat does not model
        },
    ]


def delta(text: str) -> dict[str, Any]:
    return {
        "type": "response.output_text.delta",
        "item_id": "msg_up",
        "output_index": 0,
        "content_index": 0,
        "delta": text,
        "sequence_number": 999,
    }


def finished(text: str) -> list[dict[str, Any]]:
    item = {
        **TEXT_ITEM,
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    done = {**UPSTREAM_RESPONSE, "status": "completed", "output": [item]}
    return [
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": done},
    ]


async def feed(
    events: Sequence[dict[str, Any]], error: EngineError | None = None, hold: bool = False
) -> AsyncGenerator[dict[str, Any], None]:
    for event in events:
        yield json.loads(json.dumps(event))  # a fresh object, as parsed from the wire
    if error is not None:
        raise error
    if hold:
        await asyncio.Event().wait()


def generation(
    events: AsyncGenerator[dict[str, Any], None], *, max_deltas: int = 100, **base: Any
) -> tuple[ProxiedResponsesGeneration, list[dict[str, Any]]]:
    stored: list[dict[str, Any]] = []

    async def record(response: dict[str, Any]) -> None:
        stored.append(response)

    relay = ProxiedResponsesGeneration(
        events=events, base={**BASE, **base}, record=record, max_deltas=max_deltas
    )
    return relay, stored


def payloads(produced: Sequence[Produced | Event]) -> list[dict[str, Any]]:
    out = []
    for item in produced:
        assert isinstance(item, tuple)
        assert len(item) == 2
        name, data = item
        assert isinstance(name, str)
        assert isinstance(data, str)
        body = json.loads(data)
        assert body["type"] == name
        out.append(body)
    return out


async def test_events_pass_unchanged_but_for_our_id_and_numbering() -> None:
    upstream = [*opened(40), delta("Hel"), delta("lo"), *finished("Hello")]
    relay, stored = generation(feed(upstream))
    sent = payloads([item async for item in relay.events()])
    assert [p["sequence_number"] for p in sent] == list(range(len(upstream)))
    assert [p["type"] for p in sent] == [e["type"] for e in upstream]
    for ours, theirs in zip(sent, upstream, strict=True):
        rest = {k: v for k, v in ours.items() if k not in ("sequence_number", "response")}
        assert rest == {k: v for k, v in theirs.items() if k not in ("sequence_number", "response")}
        if "response" in theirs:
            expected = {**theirs["response"], "id": "resp_ours", "store": True}
            expected["previous_response_id"] = "resp_before"
            assert ours["response"] == expected  # service_tier and all
    # The store: in progress, the finished item, then the final object (before it is sent).
    assert [r["status"] for r in stored] == ["in_progress", "in_progress", "completed"]
    assert stored[1]["output"][0]["content"][0]["text"] == "Hello"
    assert stored[-1] == sent[-1]["response"] == relay.response
    assert relay.error is None


async def test_a_background_response_is_queued_when_created() -> None:
    relay, _ = generation(feed([*opened(0), *finished("")]), background=True)
    sent = payloads([item async for item in relay.events()])
    assert (sent[0]["response"]["status"], sent[0]["response"]["background"]) == ("queued", True)
    assert sent[1]["response"]["status"] == "in_progress"


async def test_stopped_by_the_hub_the_open_item_closes_with_what_it_had() -> None:
    relay, stored = generation(feed([*opened(0), delta("Hal")], hold=True))
    events = relay.events()
    seen = [await anext(events) for _ in range(5)]
    closing = payloads(relay.closing_events("cancelled", "cancelled"))
    assert closing == payloads(relay.closing_events("cancelled", "cancelled"))  # pure
    assert [p["type"] for p in closing] == ["response.output_item.done", "response.incomplete"]
    assert [p["sequence_number"] for p in closing] == [5, 6]
    item = closing[0]["item"]
    assert (item["status"], item["content"][0]["text"]) == ("incomplete", "Hal")
    final = closing[1]["response"]
    assert (final["id"], final["status"], final["output"]) == ("resp_ours", "cancelled", [item])

    # Cancelled while waiting for the upstream: the store says so before the hub sends it.
    async def next_event() -> Produced:
        return await anext(events)

    task = asyncio.create_task(next_event())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert stored[-1]["status"] == "cancelled"
    assert stored[-1]["output"] == [item]
    assert len(seen) == 5


async def test_an_upstream_failure_is_an_error_then_response_failed_with_the_partial_output() -> (
    None
):
    failure = EngineError("upstream dropped the connection", code="upstream_disconnected")
    relay, stored = generation(feed([*opened(0), delta("Hal")], error=failure))
    sent = payloads([item async for item in relay.events()])
    assert [p["type"] for p in sent[-3:]] == [
        "response.output_item.done",
        "error",
        "response.failed",
    ]
    assert [p["sequence_number"] for p in sent] == list(range(len(sent)))
    assert "dropped the connection" in sent[-2]["message"]
    assert sent[-1]["response"]["output"][0]["content"][0]["text"] == "Hal"
    assert stored[-1]["status"] == "failed"
    assert relay.error is failure


async def test_an_upstream_ignoring_the_limit_is_cut() -> None:
    relay, _ = generation(feed([*opened(0), *[delta("x")] * 10]), max_deltas=3)
    sent = payloads([item async for item in relay.events()])
    assert [p["type"] for p in sent].count("response.output_text.delta") == 3
    final = sent[-1]["response"]
    assert (sent[-1]["type"], final["status"]) == ("response.incomplete", "incomplete")
    assert final["incomplete_details"] == {"reason": "max_output_tokens"}
    assert final["output"][0]["content"][0]["text"] == "xxx"


async def test_a_surrogate_pair_split_over_two_deltas_is_one_character() -> None:
    relay, _ = generation(feed([*opened(0), delta("a\ud83d"), delta("\ude80b"), *finished("")]))
    produced = [item async for item in relay.events()]
    texts = [p["delta"] for p in payloads(produced) if p["type"].endswith(".delta")]
    assert texts == ["a", "🚀b"]
    for item in produced:
        assert isinstance(item, tuple)
        item[1].encode("utf-8")  # every payload is writable as UTF-8

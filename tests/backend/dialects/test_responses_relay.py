"""The ``openai`` engine relays ``/v1/responses`` to an upstream that speaks the
Responses API: a second ssechat, ``python -m backend`` on the simulated engine.

Asked through the gateway with the official ``openai`` SDK, the upstream's
events, items and tool calls come back as the upstream made them, under the
gateway's own response id, numbering, store, background runs, resume and
cancel; fields the gateway does not know reach the upstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from openai import OpenAI
from openai.types.responses import ResponseStreamEvent

from backend.app import create_app
from backend.config import Settings
from tests.backend.dialects.helpers import QUESTION, SIMULATED, SYSTEM, datas, read_sse
from tests.servers import run_backend_process, serve_app

REASONING = "ssechat-simulated-reasoning"
WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def urls() -> Iterator[tuple[str, str]]:
    """(the upstream, the gateway in front of it)."""
    env = {
        "SSECHAT_ENGINE": "simulated",
        # Slow enough for a background response to be live while the test resumes it.
        "SSECHAT_SIM_TOKENS_PER_S": "100",
        "SSECHAT_LOG_LEVEL": "warning",
    }
    with run_backend_process(env) as upstream:
        gateway = create_app(Settings(engine="openai", upstream_url=f"{upstream}/v1"))
        with serve_app(gateway) as gateway_url:
            yield upstream, gateway_url


@pytest.fixture(scope="module")
def sdk(urls: tuple[str, str]) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{urls[1]}/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def direct(urls: tuple[str, str]) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{urls[0]}/v1", api_key="unused", max_retries=0) as client:
        yield client


def shape(events: list[ResponseStreamEvent]) -> list[tuple[str, str]]:
    """Each event's type and text, without what belongs to one response (ids, times)."""
    return [(event.type, str(getattr(event, "delta", ""))) for event in events]


def test_streamed_events_and_tool_calls_are_the_upstream_s_under_our_id(
    sdk: OpenAI, direct: OpenAI, urls: tuple[str, str]
) -> None:
    asked: dict[str, Any] = {
        "model": SIMULATED,
        "input": "What is the weather in Oslo? Use get_weather.",
        "tools": [WEATHER],
        "stream": True,
    }
    relayed = list(sdk.responses.create(**asked))
    upstream = list(direct.responses.create(**asked))
    assert shape(relayed) == shape(upstream)
    assert "response.function_call_arguments.delta" in [event.type for event in relayed]
    assert [event.sequence_number for event in relayed] == list(range(len(relayed)))
    final, reference = relayed[-1], upstream[-1]
    assert final.type == reference.type == "response.completed"
    # The call as the upstream made it: the simulated engine's id and arguments.
    calls = [item for item in final.response.output if item.type == "function_call"]
    expected = [item for item in reference.response.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        (c.call_id, c.name, c.arguments) for c in expected
    ]
    # The response is the gateway's: retrievable there, unknown to the upstream.
    response_id = final.response.id
    assert relayed[0].type == "response.created"
    assert relayed[0].response.id == response_id != reference.response.id
    assert sdk.responses.retrieve(response_id).model_dump() == final.response.model_dump()
    assert httpx.get(f"{urls[0]}/v1/responses/{response_id}").status_code == 404


def test_raw_ids_are_sequence_numbers_plus_one_and_not_streamed_is_the_same_object(
    sdk: OpenAI, urls: tuple[str, str]
) -> None:
    body = {"model": SIMULATED, "instructions": SYSTEM, "input": QUESTION, "stream": True}
    with httpx.Client(base_url=urls[1], timeout=30) as http:
        response, events, _ = read_sse(http, "POST", "/v1/responses", json=body)
    payloads = datas(events)
    assert response.headers["x-stream-id"] == payloads[0]["response"]["id"]
    for event, payload in zip(events, payloads, strict=True):
        assert event.type == payload["type"]
        assert int(event.last_event_id) == payload["sequence_number"] + 1
    whole = sdk.responses.create(model=SIMULATED, instructions=SYSTEM, input=QUESTION)
    assert whole.status == "completed"
    assert whole.output_text == payloads[-1]["response"]["output"][0]["content"][0]["text"]
    assert whole.instructions == SYSTEM
    assert sdk.responses.retrieve(whole.id).model_dump() == whole.model_dump()


def test_a_function_call_output_continues_the_conversation(sdk: OpenAI) -> None:
    first = sdk.responses.create(
        model=SIMULATED, input="What is the weather in Oslo? Use get_weather.", tools=[WEATHER]
    )
    call = next(item for item in first.output if item.type == "function_call")
    answer = sdk.responses.create(
        model=SIMULATED,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "12 C"}],
        tools=[WEATHER],
    )
    # The upstream got the whole conversation and answered the tool's result in text.
    assert answer.status == "completed"
    assert answer.previous_response_id == first.id
    assert [item.type for item in answer.output] == ["message"]
    assert answer.output_text


def test_background_resume_and_reasoning_events(sdk: OpenAI) -> None:
    started = sdk.responses.create(
        model=REASONING, input=QUESTION, reasoning={"effort": "high"}, background=True
    )
    assert (started.status, started.background) == ("queued", True)
    full = list(sdk.responses.retrieve(started.id, stream=True))
    tail = list(sdk.responses.retrieve(started.id, stream=True, starting_after=5))
    assert [e.model_dump() for e in tail] == [e.model_dump() for e in full[6:]]
    types = [event.type for event in full]
    assert types[0] == "response.created"
    assert full[0].type == "response.created"
    assert full[0].response.status == "queued"  # as the object answered at once said
    assert "response.reasoning_text.delta" in types
    assert types[-1] == "response.completed"
    stored = sdk.responses.retrieve(started.id)
    assert stored.status == "completed"
    assert stored.background is True
    assert [item.type for item in stored.output] == ["reasoning", "message"]
    assert stored.usage is not None
    assert stored.usage.output_tokens_details.reasoning_tokens > 0


def test_cancel_stops_the_relay_and_keeps_what_came(sdk: OpenAI) -> None:
    started = sdk.responses.create(
        model=REASONING, input=QUESTION, reasoning={"effort": "xhigh"}, background=True
    )
    stream = sdk.responses.retrieve(started.id, stream=True)
    seen: list[ResponseStreamEvent] = []
    for event in stream:
        seen.append(event)
        if event.type == "response.reasoning_text.delta":
            break
    cancelled = sdk.responses.cancel(started.id)
    assert cancelled.status == "cancelled"
    seen.extend(stream)
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    assert [e.type for e in seen[-2:]] == ["response.output_item.done", "response.incomplete"]
    terminal = seen[-1]
    assert terminal.type == "response.incomplete"
    assert terminal.response.status == "cancelled"
    reasoning = terminal.response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.status == "incomplete"
    assert reasoning.content is not None
    thought = "".join(e.delta for e in seen if e.type == "response.reasoning_text.delta")
    assert reasoning.content[0].text == thought
    assert sdk.responses.retrieve(started.id).status == "cancelled"


def test_fields_the_gateway_does_not_know_reach_the_upstream(
    sdk: OpenAI, urls: tuple[str, str]
) -> None:
    # The gateway relays the field; this upstream (ssechat) refuses it by name.
    with httpx.Client(base_url=urls[1], timeout=30) as http:
        reply = http.post("/v1/responses", json={"model": SIMULATED, "input": "x", "x_unknown": 1})
        assert reply.status_code == 400  # the client's request, refused: not retried as a 5xx
        assert reply.json()["error"]["code"] == "upstream_bad_request"
        assert reply.json()["error"]["type"] == "invalid_request_error"
        assert "Unknown parameter: 'x_unknown'" in reply.json()["error"]["message"]
        # Streamed: an error event, then response.failed, numbered like the rest.
        body = {"model": SIMULATED, "input": "x", "x_unknown": 1, "stream": True}
        _, events, _ = read_sse(http, "POST", "/v1/responses", json=body)
    payloads = datas(events)
    assert [p["type"] for p in payloads] == ["error", "response.failed"]
    assert [p["sequence_number"] for p in payloads] == [0, 1]
    assert "x_unknown" in payloads[0]["message"]


def test_off_serves_responses_from_the_upstream_s_chat_completions(
    sdk: OpenAI, urls: tuple[str, str]
) -> None:
    gateway = create_app(
        Settings(engine="openai", upstream_url=f"{urls[0]}/v1", upstream_responses="off")
    )
    asked: dict[str, Any] = {"model": SIMULATED, "instructions": SYSTEM, "input": QUESTION}
    with (
        serve_app(gateway) as url,
        OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as rendered,
    ):
        from_chat = rendered.responses.create(**asked)
        # Rendered here, so a field this gateway does not know is refused here, by name.
        with httpx.Client(base_url=url, timeout=30) as http:
            refused = http.post("/v1/responses", json={**asked, "x_unknown": 1})
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "unknown_parameter")
    relayed = sdk.responses.create(**asked)
    assert from_chat.output_text == relayed.output_text
    # Items rendered here take their ids from this response's; relayed ones keep the upstream's.
    assert from_chat.output[0].id == "msg_" + from_chat.id.removeprefix("resp_") + "0"
    assert not relayed.output[0].id.startswith("msg_" + relayed.id.removeprefix("resp_"))


@pytest.mark.redis
def test_two_gateway_workers_on_redis_share_a_relayed_response(
    urls: tuple[str, str], redis_url: str
) -> None:
    settings = Settings(
        engine="openai", upstream_url=f"{urls[0]}/v1", hub="redis", redis_url=redis_url
    )
    with (
        serve_app(create_app(settings)) as a,
        serve_app(create_app(settings)) as b,
        OpenAI(base_url=f"{a}/v1", api_key="unused", max_retries=0) as on_a,
        OpenAI(base_url=f"{b}/v1", api_key="unused", max_retries=0) as on_b,
    ):
        started = on_a.responses.create(
            model=REASONING, input=QUESTION, reasoning={"effort": "low"}, background=True
        )
        # B follows what A relays from sequence number 3; A replays all of it at the end.
        tail = list(on_b.responses.retrieve(started.id, stream=True, starting_after=3))
        full = list(on_a.responses.retrieve(started.id, stream=True))
        assert [e.model_dump() for e in tail] == [e.model_dump() for e in full[4:]]
        assert full[-1].type == "response.completed"
        assert on_b.responses.retrieve(started.id).model_dump() == full[-1].response.model_dump()
        # B cancels what A relays.
        live = on_a.responses.create(
            model=REASONING, input=QUESTION, reasoning={"effort": "xhigh"}, background=True
        )
        events = on_a.responses.retrieve(live.id, stream=True)
        next(event for event in events if event.type == "response.reasoning_text.delta")
        assert on_b.responses.cancel(live.id).status == "cancelled"
        assert list(events)[-1].type == "response.incomplete"
        assert on_a.responses.retrieve(live.id).status == "cancelled"

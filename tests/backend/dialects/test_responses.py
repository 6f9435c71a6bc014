"""``/v1/responses`` with the official ``openai`` SDK (and raw bytes) against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI
from openai.types.responses import Response, ResponseCreatedEvent, ResponseStreamEvent

from backend.engines.base import Engine
from tests.backend.dialects.helpers import (
    QUESTION,
    SIMULATED,
    SLOW,
    SYSTEM,
    chat_text,
    datas,
    dialect_server,
    read_sse,
    scripted,
)

RESPONSES = "/v1/responses"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[Engine]]]:
    with dialect_server() as running:
        yield running


def delta_text(events: list[ResponseStreamEvent]) -> str:
    return "".join(e.delta for e in events if e.type == "response.output_text.delta")


def test_sdk_stream_is_the_typed_sequence_and_the_chat_completions_text(
    openai_sdk: OpenAI, url: str, http: httpx.Client
) -> None:
    events = list(
        openai_sdk.responses.create(
            model=SIMULATED, instructions=SYSTEM, input=QUESTION, max_output_tokens=400, stream=True
        )
    )
    types = [event.type for event in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert set(types[4:-4]) == {"response.output_text.delta"}
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1]
    assert final.type == "response.completed"
    text = delta_text(events)
    assert text == final.response.output_text
    assert text == chat_text(http, url, model=SIMULATED, max_tokens=400)
    assert final.response.status == "completed"
    assert final.response.usage is not None
    assert final.response.usage.output_tokens > 10
    assert events[0].type == "response.created"
    assert events[0].response.status == "in_progress"


def test_raw_events_name_their_type_and_ids_are_sequence_numbers_plus_one(
    http: httpx.Client,
) -> None:
    body = {"model": SIMULATED, "input": QUESTION, "max_output_tokens": 12, "stream": True}
    response, events, _ = read_sse(http, "POST", RESPONSES, json=body)
    assert response.headers["content-type"].startswith("text/event-stream")
    payloads = datas(events)
    assert response.headers["x-stream-id"] == payloads[0]["response"]["id"]
    for event, payload in zip(events, payloads, strict=True):
        assert event.type == payload["type"]
        assert int(event.last_event_id) == payload["sequence_number"] + 1
    assert payloads[-1]["type"] == "response.incomplete"
    assert payloads[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    message = payloads[-1]["response"]["output"][0]
    assert message["status"] == "incomplete"


def test_not_streamed_is_the_streamed_object_and_retrieve_returns_it(openai_sdk: OpenAI) -> None:
    whole = openai_sdk.responses.create(
        model=SIMULATED, instructions=SYSTEM, input=QUESTION, max_output_tokens=400
    )
    streamed = list(
        openai_sdk.responses.create(
            model=SIMULATED, instructions=SYSTEM, input=QUESTION, max_output_tokens=400, stream=True
        )
    )
    assert isinstance(whole, Response)
    assert whole.output_text == delta_text(streamed)
    assert whole.status == "completed"
    assert whole.instructions == SYSTEM
    assert whole.max_output_tokens == 400
    stored = openai_sdk.responses.retrieve(whole.id)
    assert stored.model_dump() == whole.model_dump()


def test_background_then_resume_with_starting_after(openai_sdk: OpenAI, http: httpx.Client) -> None:
    started = openai_sdk.responses.create(
        model=SLOW, input=QUESTION, max_output_tokens=16, background=True
    )
    assert started.status == "queued"
    assert started.background is True
    # Follow it live from the start, then replay the tail after sequence number 5.
    full = list(openai_sdk.responses.retrieve(started.id, stream=True))
    tail = list(openai_sdk.responses.retrieve(started.id, stream=True, starting_after=5))
    assert [e.model_dump() for e in tail] == [e.model_dump() for e in full[6:]]
    assert [e.sequence_number for e in full] == list(range(len(full)))
    assert full[-1].type == "response.incomplete"  # the slow engine runs to max tokens
    # The same bytes whether asked with starting_after=5 or Last-Event-ID: 6.
    _, by_query, raw_query = read_sse(
        http, "GET", f"{RESPONSES}/{started.id}", params={"stream": "true", "starting_after": "5"}
    )
    _, _by_header, raw_header = read_sse(
        http,
        "GET",
        f"{RESPONSES}/{started.id}",
        params={"stream": "true"},
        headers={"Last-Event-ID": "6"},
    )
    assert raw_query == raw_header
    assert by_query[0].last_event_id == "7"
    stored = openai_sdk.responses.retrieve(started.id)
    assert stored.status == "incomplete"
    assert stored.output_text == delta_text(full)
    assert stored.usage is not None
    assert stored.usage.output_tokens == 16


def test_resume_after_the_end_is_204_and_unknown_ids_are_404(
    openai_sdk: OpenAI, http: httpx.Client
) -> None:
    events = list(openai_sdk.responses.create(model=SIMULATED, input=QUESTION, stream=True))
    assert isinstance(events[0], ResponseCreatedEvent)
    response_id = events[0].response.id
    last = events[-1].sequence_number
    after_end = http.get(
        f"{RESPONSES}/{response_id}", params={"stream": "true", "starting_after": last}
    )
    assert after_end.status_code == 204
    assert after_end.content == b""
    unknown = http.get(f"{RESPONSES}/resp_nope", params={"stream": "true"})
    assert unknown.status_code == 404
    assert unknown.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        openai_sdk.responses.retrieve("resp_nope")


def test_ahead_of_a_finished_stream_is_204_and_a_running_continuation_is_refused(
    openai_sdk: OpenAI, http: httpx.Client
) -> None:
    done = openai_sdk.responses.create(model=SIMULATED, input=QUESTION, background=True)
    list(openai_sdk.responses.retrieve(done.id, stream=True))  # until its end
    ahead = http.get(
        f"{RESPONSES}/{done.id}", params={"stream": "true", "starting_after": "100000"}
    )
    assert ahead.status_code == 204
    live = openai_sdk.responses.create(
        model=SLOW, input=QUESTION, max_output_tokens=400, background=True
    )
    with pytest.raises(openai.BadRequestError, match="still"):
        openai_sdk.responses.create(model=SIMULATED, input="x", previous_response_id=live.id)
    openai_sdk.responses.cancel(live.id)


def test_background_streamed_runs_on_after_the_client_leaves(openai_sdk: OpenAI) -> None:
    stream = openai_sdk.responses.create(
        model=SLOW, input=QUESTION, max_output_tokens=10, background=True, stream=True
    )
    first = next(iter(stream))
    stream.close()  # the connection goes; the generation does not
    assert first.type == "response.created"
    assert first.response.status == "queued"
    rest = list(openai_sdk.responses.retrieve(first.response.id, stream=True, starting_after=0))
    assert rest[-1].type == "response.incomplete"
    assert rest[-1].response.usage is not None
    assert rest[-1].response.usage.output_tokens == 10
    assert openai_sdk.responses.retrieve(first.response.id).status == "incomplete"


def test_logprobs_when_included_and_given(http: httpx.Client) -> None:
    body = {
        "model": "scripted-logprobs",
        "input": "x",
        "include": ["message.output_text.logprobs"],
        "stream": True,
    }
    _, events, _ = read_sse(http, "POST", RESPONSES, json=body)
    payloads = datas(events)
    expected = [
        {"token": "Hi", "logprob": -0.25, "top_logprobs": [{"token": "Hi", "logprob": -0.25}]}
    ]
    delta = next(p for p in payloads if p["type"] == "response.output_text.delta")
    assert (delta["delta"], delta["logprobs"]) == ("Hi", expected)
    done = next(p for p in payloads if p["type"] == "response.output_text.done")
    assert done["logprobs"] == expected
    assert payloads[-1]["response"]["output"][0]["content"][0]["logprobs"] == expected


def test_cancel_a_background_response(openai_sdk: OpenAI, http: httpx.Client) -> None:
    started = openai_sdk.responses.create(
        model=SLOW, input=QUESTION, max_output_tokens=400, background=True
    )
    stream = openai_sdk.responses.retrieve(started.id, stream=True)
    seen: list[ResponseStreamEvent] = []
    for event in stream:
        seen.append(event)
        if event.type == "response.output_text.delta":
            break  # it is generating: cancel it
    cancelled = openai_sdk.responses.cancel(started.id)
    assert cancelled.status == "cancelled"
    seen.extend(stream)
    assert [e.sequence_number for e in seen] == list(range(len(seen)))
    terminal = seen[-1]
    assert terminal.type == "response.incomplete"
    assert terminal.response.status == "cancelled"
    # The partial text is kept, in the stream and in the stored object.
    assert delta_text(seen)
    assert terminal.response.output_text == delta_text(seen)
    assert openai_sdk.responses.retrieve(started.id).output_text == delta_text(seen)
    assert openai_sdk.responses.retrieve(started.id).status == "cancelled"
    # Cancelling again answers the same object; a foreground response cannot be cancelled.
    assert openai_sdk.responses.cancel(started.id).status == "cancelled"
    foreground = openai_sdk.responses.create(model=SIMULATED, input=QUESTION)
    refused = http.post(f"{RESPONSES}/{foreground.id}/cancel")
    assert refused.status_code == 400
    assert "background" in refused.json()["error"]["message"]
    finished = openai_sdk.responses.create(model=SIMULATED, input=QUESTION, background=True)
    list(openai_sdk.responses.retrieve(finished.id, stream=True))  # wait for its end
    assert openai_sdk.responses.cancel(finished.id).status == "completed"
    # A streamed response: cancelled while it streams, then again (a Stop racing its end).
    streamed = openai_sdk.responses.create(
        model=SLOW, input=QUESTION, max_output_tokens=400, stream=True
    )
    first = next(iter(streamed))
    assert first.type == "response.created"
    assert openai_sdk.responses.cancel(first.response.id).status == "cancelled"
    assert list(streamed)[-1].type == "response.incomplete"
    again = http.post(f"{RESPONSES}/{first.response.id}/cancel")
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")


def test_delete_then_retrieve_is_404(openai_sdk: OpenAI, http: httpx.Client) -> None:
    response = openai_sdk.responses.create(model=SIMULATED, input=QUESTION)
    deleted = http.delete(f"{RESPONSES}/{response.id}")
    assert deleted.json() == {"id": response.id, "object": "response.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        openai_sdk.responses.retrieve(response.id)
    assert http.delete(f"{RESPONSES}/{response.id}").status_code == 404
    # A live background response: deleting stops it, and its stream is gone too.
    live = openai_sdk.responses.create(
        model=SLOW, input=QUESTION, max_output_tokens=400, background=True
    )
    openai_sdk.responses.delete(live.id)
    assert http.get(f"{RESPONSES}/{live.id}", params={"stream": "true"}).status_code == 404


def test_store_false_is_not_retrievable(openai_sdk: OpenAI) -> None:
    response = openai_sdk.responses.create(model=SIMULATED, input=QUESTION, store=False)
    assert response.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError):
        openai_sdk.responses.retrieve(response.id)


def test_every_delta_kind_and_a_continued_conversation(
    openai_sdk: OpenAI, engines: list[Engine]
) -> None:
    engine = scripted(engines, "scripted-every-kind")
    events = list(
        openai_sdk.responses.create(
            model="scripted-every-kind", instructions="Use tools.", input="Weather?", stream=True
        )
    )
    assert [e.sequence_number for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    assert types == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",  # reasoning
        "response.content_part.added",
        "response.reasoning_text.delta",
        "response.reasoning_text.delta",
        "response.reasoning_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",  # message
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",  # function call 0
        "response.function_call_arguments.delta",
        "response.output_item.added",  # function call 1, interleaved
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]
    assert final.type == "response.completed"
    output = final.response.output
    assert [item.type for item in output] == [
        "reasoning",
        "message",
        "function_call",
        "function_call",
    ]
    reasoning, _message, first, second = output
    assert reasoning.type == "reasoning"
    assert reasoning.content is not None
    assert reasoning.content[0].text == "Let me think."
    assert final.response.output_text == 'Hello 🚀 "world"'
    assert first.type == "function_call"
    assert second.type == "function_call"
    assert (first.call_id, first.name, first.arguments) == (
        "call_a",
        "get_weather",
        '{"city":"Oslo"}',
    )
    assert (second.call_id, second.name, second.arguments) == ("call_b", "get_time", "{}")
    usage = final.response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (7, 9, 16)
    assert usage.output_tokens_details.reasoning_tokens == 3
    assert usage.input_tokens_details.cached_tokens == 2

    # Continue it: the engine gets the earlier turn (not its instructions) and the tool output.
    continued = openai_sdk.responses.create(
        model="scripted-every-kind",
        previous_response_id=final.response.id,
        input=[
            {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_b", "output": "noon"},
        ],
    )
    assert continued.previous_response_id == final.response.id
    request = engine.requests[-1]
    assert [m.role for m in request.messages] == ["user", "assistant", "tool", "tool"]
    assert request.messages[0].content == "Weather?"
    assistant = request.messages[1]
    assert assistant.content == 'Hello 🚀 "world"'
    assert [(c.id, c.name, c.arguments) for c in assistant.tool_calls] == [
        ("call_a", "get_weather", '{"city":"Oslo"}'),
        ("call_b", "get_time", "{}"),
    ]
    assert [(m.tool_call_id, m.content) for m in request.messages[2:]] == [
        ("call_a", "sunny"),
        ("call_b", "noon"),
    ]
    # And once more: the whole chain comes along (this script calls the same tools again,
    # and every call must be answered before the conversation goes on).
    openai_sdk.responses.create(
        model="scripted-every-kind",
        previous_response_id=continued.id,
        input=[
            {"type": "function_call_output", "call_id": "call_a", "output": "rain"},
            {"type": "function_call_output", "call_id": "call_b", "output": "one"},
            {"role": "user", "content": "And tomorrow?"},
        ],
    )
    assert [m.role for m in engine.requests[-1].messages] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
        "tool",
        "user",
    ]
    with pytest.raises(openai.BadRequestError, match="call_a, call_b"):
        openai_sdk.responses.create(
            model="scripted-every-kind", previous_response_id=continued.id, input="Unanswered?"
        )
    with pytest.raises(openai.NotFoundError, match="Previous response"):
        openai_sdk.responses.create(model=SIMULATED, previous_response_id="resp_nope", input="x")


def test_request_fields_reach_the_engine(openai_sdk: OpenAI, engines: list[Engine]) -> None:
    engine = scripted(engines, "scripted-length")
    response = openai_sdk.responses.create(  # type: ignore[call-overload]
        model="scripted-length",
        input=[
            {"role": "developer", "content": "Be terse."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                ],
            },
        ],
        tools=[{"type": "function", "name": "look", "parameters": {"type": "object"}}],
        tool_choice={"type": "function", "name": "look"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "answer", "schema": {"type": "object"}}},
        reasoning={"effort": "low"},
        temperature=0.5,
        top_p=0.9,
        max_output_tokens=33,
        metadata={"ticket": "42"},
    )
    request = engine.requests[-1]
    assert [m.role for m in request.messages] == ["developer", "user"]
    assert request.messages[1].content == "What is this?"
    assert request.messages[1].parts[0].data["url"] == "data:image/png;base64,AAAA"
    assert [t.name for t in request.tools] == ["look"]
    assert request.tool_choice == "look"
    assert request.parallel_tool_calls is False
    assert request.response_format is not None
    assert (request.response_format.type, request.response_format.name) == ("json_schema", "answer")
    assert request.reasoning_effort == "low"
    assert (request.temperature, request.top_p, request.max_tokens) == (0.5, 0.9, 33)
    # max_output_tokens counts reasoning too: Chat Completions' max_completion_tokens.
    assert request.max_tokens_field == "max_completion_tokens"
    assert request.metadata == {"ticket": "42"}
    # The object echoes what was asked for.
    assert response.to_dict()["tool_choice"] == {"type": "function", "name": "look"}
    assert response.parallel_tool_calls is False
    assert response.metadata == {"ticket": "42"}
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_reasoning_summary_and_refusal(openai_sdk: OpenAI, http: httpx.Client) -> None:
    events = list(
        openai_sdk.responses.create(
            model="scripted-every-kind", input="x", reasoning={"summary": "auto"}, stream=True
        )
    )
    types = [e.type for e in events]
    assert "response.reasoning_summary_text.delta" in types
    assert "response.reasoning_text.delta" not in types
    final = events[-1]
    assert final.type == "response.completed"
    reasoning = final.response.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.summary[0].text == "Let me think."

    body = {"model": "scripted-refusal", "input": "x", "stream": True}
    _, raw_events, _ = read_sse(http, "POST", RESPONSES, json=body)
    payloads = datas(raw_events)
    assert [p["type"] for p in payloads if "refusal" in p["type"]] == [
        "response.refusal.delta",
        "response.refusal.done",
    ]
    final_response = payloads[-1]["response"]
    assert payloads[-1]["type"] == "response.incomplete"
    assert final_response["incomplete_details"] == {"reason": "content_filter"}
    assert final_response["output"][0]["content"] == [
        {"type": "output_text", "text": "I ", "annotations": [], "logprobs": []},
        {"type": "refusal", "refusal": "cannot help with that."},
    ]


@pytest.mark.parametrize("model", ["failing", "crashing"])
def test_a_failure_mid_stream_is_an_error_then_response_failed(
    model: str, openai_sdk: OpenAI, http: httpx.Client
) -> None:
    events = list(openai_sdk.responses.create(model=model, input=QUESTION, stream=True))
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed"
    assert failed.response.error is not None
    # What came before the failure is kept.
    text = delta_text(events)
    assert text.startswith(" t0 t1")
    assert failed.response.output_text == text
    assert openai_sdk.responses.retrieve(failed.response.id).status == "failed"
    whole = http.post(RESPONSES, json={"model": model, "input": QUESTION})
    assert whole.status_code == 500
    assert whole.json()["error"]["message"]


# No value satisfies it (the bounds leave no number): the simulated engine refuses it.
IMPOSSIBLE: dict[str, Any] = {
    "type": "object",
    "properties": {"n": {"type": "integer", "minimum": 5, "maximum": 1}},
    "required": ["n"],
}
UNSATISFIABLE_TOOL = {"type": "function", "name": "f", "parameters": IMPOSSIBLE}
UNSATISFIABLE_FORMAT = {"type": "json_schema", "name": "answer", "schema": IMPOSSIBLE}
NOT_A_SCHEMA = {"type": "json_schema", "name": "answer", "schema": {"type": "nothing"}}


def refusal(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    reply = http.post(RESPONSES, json={"model": SIMULATED, "input": QUESTION, **body})
    assert reply.status_code == 400, reply.text
    error: dict[str, Any] = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    return error


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"frequency_penalty": 1}, "frequency_penalty", "unknown_parameter"),
        (
            {"tools": [UNSATISFIABLE_TOOL], "tool_choice": "required"},
            "tools[0].parameters",
            "unsupported_parameter",
        ),
        ({"tools": [{"type": "web_search"}]}, "tools[0]", "invalid_value"),
        ({"text": {"format": UNSATISFIABLE_FORMAT}}, "text.format.schema", "unsupported_parameter"),
        ({"text": {"format": NOT_A_SCHEMA}}, "text.format.schema", "invalid_value"),
        ({"text": {"verbosity": "low"}}, "text.verbosity", "unsupported_parameter"),
        ({"reasoning": {"effort": "high"}}, "reasoning.effort", "unsupported_parameter"),
        ({"include": ["message.output_text.logprobs"]}, "include", "unsupported_parameter"),
        ({"include": ["reasoning.encrypted_content"]}, "include", "unsupported_parameter"),
        ({"background": True, "store": False}, "store", "invalid_value"),
        ({"temperature": 3}, "temperature", "invalid_value"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input", "invalid_value"),
        ({"input": []}, "input", "invalid_value"),
        ({"max_output_tokens": 10**6}, "max_output_tokens", "invalid_value"),
    ],
)
def test_bad_or_unhonourable_fields_are_refused_by_name(
    http: httpx.Client, body: dict[str, Any], param: str, code: str
) -> None:
    error = refusal(http, body)
    assert error["code"] == code
    assert error["param"] is not None
    assert error["param"].startswith(param), error


def test_the_sdk_raises_readable_errors(openai_sdk: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        openai_sdk.responses.create(model="nope", input=QUESTION)
    with pytest.raises(openai.BadRequestError, match="Unknown parameter"):
        openai_sdk.responses.create(model=SIMULATED, input=QUESTION, extra_body={"n": 2})


def test_another_key_sees_nothing() -> None:
    with dialect_server(api_keys="k1,k2") as (url, _):
        mine = OpenAI(base_url=f"{url}/v1", api_key="k1", max_retries=0)
        theirs = OpenAI(base_url=f"{url}/v1", api_key="k2", max_retries=0)
        response = mine.responses.create(
            model=SLOW, input=QUESTION, max_output_tokens=400, background=True
        )
        for attempt in (
            lambda: theirs.responses.retrieve(response.id),
            lambda: list(theirs.responses.retrieve(response.id, stream=True)),
            lambda: theirs.responses.cancel(response.id),
            lambda: theirs.responses.delete(response.id),
            lambda: theirs.responses.create(
                model=SIMULATED, input="x", previous_response_id=response.id
            ),
        ):
            with pytest.raises(openai.NotFoundError):
                attempt()
        assert mine.responses.cancel(response.id).status == "cancelled"
        with pytest.raises(openai.AuthenticationError):
            OpenAI(base_url=f"{url}/v1", api_key="k3", max_retries=0).responses.retrieve(
                response.id
            )

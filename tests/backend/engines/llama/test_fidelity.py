"""What the llama engine honours beyond plain text, on the real model: forced tool
calls and JSON answers under a grammar, logprobs, logit_bias; and what it refuses
by name before anything runs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import jsonschema
import pytest

from backend.engines.base import (
    ChatMessage,
    ContentPart,
    EngineError,
    ResponseFormat,
    TokenDelta,
    ToolSpec,
)
from backend.engines.llama import LlamaEngine
from tests.backend.engines.llama import helpers

WEATHER = ToolSpec(
    "get_weather",
    "Get the current weather in a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"],
    },
)
TIME = ToolSpec(
    "get_time",
    "Get the current time in a time zone.",
    {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]},
)
PERSON: Mapping[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}


def _calls(deltas: list[TokenDelta]) -> list[dict[str, Any]]:
    """The tool calls of an answer, assembled as a client would."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        for fragment in delta.tool_calls:
            call = calls.setdefault(fragment.index, {"id": None, "name": None, "arguments": ""})
            for key in ("id", "name"):
                value = getattr(fragment, key)
                if value is not None:
                    assert call[key] is None, f"{key} sent twice"
                    call[key] = value
            call["arguments"] += fragment.arguments
    return [calls[index] for index in sorted(calls)]


@pytest.mark.llama
async def test_named_tool_call_streams_schema_valid_arguments(engine: LlamaEngine) -> None:
    request = helpers.request(
        "What is the weather in Paris?",
        max_tokens=48,
        tools=(WEATHER, TIME),
        tool_choice="get_weather",
    )
    engine.check(request)
    deltas = await helpers.collect(engine.stream(request))

    assert helpers.text(deltas) == ""
    first = deltas[0].tool_calls[0]
    assert first.id is not None
    assert first.id.startswith("call_")
    assert (first.name, first.type) == ("get_weather", "function")
    assert len([d for d in deltas if d.tool_calls]) > 2  # the arguments streamed in pieces
    [call] = _calls(deltas)
    jsonschema.validate(json.loads(call["arguments"]), WEATHER.parameters)
    assert call["arguments"] == call["arguments"].strip()
    final = deltas[-1]
    assert final.finish_reason == "tool_calls"
    assert final.usage is not None
    assert final.usage.completion_tokens > 2


@pytest.mark.llama
async def test_required_tool_call_picks_one_of_the_tools(engine: LlamaEngine) -> None:
    request = helpers.request(
        "What time is it in Tokyo?", max_tokens=48, tools=(WEATHER, TIME), tool_choice="required"
    )
    engine.check(request)
    deltas = await helpers.collect(engine.stream(request))

    [call] = _calls(deltas)
    tool = {WEATHER.name: WEATHER, TIME.name: TIME}[call["name"]]
    jsonschema.validate(json.loads(call["arguments"]), tool.parameters)
    assert deltas[-1].finish_reason == "tool_calls"


@pytest.mark.llama
async def test_a_call_cut_by_max_tokens_ends_with_length(engine: LlamaEngine) -> None:
    request = helpers.request(
        "What is the weather in Paris?", max_tokens=3, tools=(WEATHER,), tool_choice="get_weather"
    )
    deltas = await helpers.collect(engine.stream(request))

    [call] = _calls(deltas)
    assert call["name"] == "get_weather"
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.completion_tokens == 3


@pytest.mark.llama
async def test_json_schema_answer_is_valid(engine: LlamaEngine) -> None:
    request = helpers.request(
        "Describe a person as JSON.",
        max_tokens=48,
        response_format=ResponseFormat("json_schema", name="person", schema=PERSON),
    )
    engine.check(request)
    deltas = await helpers.collect(engine.stream(request))

    jsonschema.validate(json.loads(helpers.text(deltas)), PERSON)
    assert deltas[-1].finish_reason == "stop"
    assert not any(delta.tool_calls for delta in deltas)


@pytest.mark.llama
async def test_json_object_answer_is_an_object(engine: LlamaEngine) -> None:
    request = helpers.request(
        "Give the capital of France as JSON.",
        max_tokens=64,
        response_format=ResponseFormat("json_object"),
    )
    deltas = await helpers.collect(engine.stream(request))

    assert isinstance(json.loads(helpers.text(deltas)), dict)
    assert deltas[-1].finish_reason == "stop"


@pytest.mark.llama
async def test_logprobs_come_with_the_text_they_describe(engine: LlamaEngine) -> None:
    request = helpers.request(
        "Tell me a long story about a dragon.", max_tokens=8, logprobs=True, top_logprobs=3
    )
    deltas = await helpers.collect(engine.stream(request))

    entries = [entry for d in deltas if d.logprobs for entry in d.logprobs["content"]]
    assert all(d.logprobs for d in deltas if d.text)
    assert deltas[-1].finish_reason == "length"
    assert len(entries) == 8  # one per sampled token, all of which reached the answer
    # The answer's leading space is trimmed; the tokens keep it.
    assert "".join(entry["token"] for entry in entries).strip() == helpers.text(deltas)
    for entry in entries:
        assert entry["logprob"] <= 0.0
        assert bytes(entry["bytes"]).decode("utf-8", "replace") == entry["token"]
        alternatives = [alt["logprob"] for alt in entry["top_logprobs"]]
        assert len(alternatives) == 3
        assert alternatives == sorted(alternatives, reverse=True)
        assert alternatives[0] >= entry["logprob"]


@pytest.mark.llama
async def test_logit_bias_changes_the_answer(engine: LlamaEngine) -> None:
    question = "What is the capital of France?"
    probe = helpers.request(question, max_tokens=4, logprobs=True)
    baseline = await helpers.collect(engine.stream(probe))
    first = next(d.logprobs["content"][0] for d in baseline if d.logprobs)
    [token] = engine.tokenize(first["token"])

    banned = helpers.request(question, max_tokens=4, logprobs=True, logit_bias={str(token): -100})
    engine.check(banned)
    deltas = await helpers.collect(engine.stream(banned))
    assert next(d.logprobs["content"][0] for d in deltas if d.logprobs)["token"] != first["token"]

    [forced] = engine.tokenize(" banana")
    favoured = helpers.request(question, max_tokens=3, logit_bias={str(forced): 100})
    assert helpers.text(await helpers.collect(engine.stream(favoured))).startswith("banana")


@pytest.mark.llama
@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"reasoning_effort": "high"}, "reasoning_effort"),
        ({"reasoning_budget_tokens": 1024}, "reasoning_budget_tokens"),
        ({"extra": {"service_tier": "flex"}}, "service_tier"),
        ({"tools": (WEATHER,)}, "tool_choice"),  # no tool_choice with tools means "auto"
        ({"tools": (WEATHER,), "tool_choice": "auto"}, "tool_choice"),
        ({"tools": (WEATHER,), "tool_choice": "get_time"}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logit_bias": {"-1": 5}}, "logit_bias"),
        ({"logit_bias": {"word": 5}}, "logit_bias"),
    ],
)
def test_what_cannot_be_honoured_is_refused_by_name(
    engine: LlamaEngine, fields: dict[str, Any], param: str
) -> None:
    request = helpers.request("Hi", **fields)
    with pytest.raises(EngineError) as caught:
        engine.check(request)
    assert caught.value.param == param
    assert caught.value.error_type == "invalid_request_error"


@pytest.mark.llama
def test_images_are_refused_by_name(engine: LlamaEngine) -> None:
    image = ContentPart("image_url", {"url": "data:image/png;base64,AAAA"})
    request = dataclasses.replace(
        helpers.request("Hi"), messages=(ChatMessage("user", "What is this?", parts=(image,)),)
    )
    with pytest.raises(EngineError) as caught:
        engine.check(request)
    assert (caught.value.param, caught.value.code) == ("messages.content", "unsupported_parameter")
    assert "text only" in caught.value.message


@pytest.mark.llama
def test_tool_choice_none_answers_in_text(engine: LlamaEngine) -> None:
    engine.check(helpers.request("Hi", tools=(WEATHER,), tool_choice="none"))

"""The simulated engine: every delta kind, deterministic, and refusals by name.

The engine runs for real (no pacing: ``tokens_per_s=0``); expectations come
from the request (its tools' schemas, validated with jsonschema), from the
engine's plain-text generator, or from a second run, never from literals.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import jsonschema
import pytest

from backend.engines.base import (
    ChatMessage,
    ContentPart,
    EngineError,
    GenerationRequest,
    ResponseFormat,
    TokenDelta,
    ToolCall,
    ToolSpec,
)
from backend.engines.simulated import (
    DEFAULT_MODEL,
    REASONING_MODEL,
    REFUSAL,
    SimulatedEngine,
    simulated_tokens,
)
from backend.engines.simulated.reasoning import EFFORT_TOKENS
from backend.engines.simulated.tools import chosen_tools

WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city.",
    {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "maximum": 7},
        },
        "required": ["city", "unit"],
        "additionalProperties": False,
    },
)
CLOCK = ToolSpec(
    "get_time",
    None,
    {
        "type": "object",
        "properties": {"zone": {"type": "string", "pattern": "^[A-Z][a-z]+/[A-Z][a-z]+$"}},
        "required": ["zone"],
    },
)
ORDER = ToolSpec(
    "place_order",
    None,
    {
        "type": "object",
        "$defs": {
            "item": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string", "minLength": 6, "maxLength": 6},
                    "quantity": {"type": "integer", "exclusiveMinimum": 0, "multipleOf": 2},
                    "gift": {"type": ["boolean", "null"]},
                },
                "required": ["sku", "quantity", "gift"],
            }
        },
        "properties": {
            "items": {"type": "array", "items": {"$ref": "#/$defs/item"}, "minItems": 2},
            "address": {
                "type": "object",
                "properties": {
                    "street": {"type": "string"},
                    "country": {"anyOf": [{"const": "FR"}, {"type": "string", "format": "date"}]},
                },
                "required": ["street", "country"],
            },
            "ratio": {"type": "number", "minimum": 0.5, "maximum": 0.75},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True},
        },
        "required": ["items", "address", "ratio", "tags"],
    },
)
NO_PARAMETERS = ToolSpec("ping", None, {})


def request(
    text: str = "Explain Server-Sent Events.",
    *,
    model: str = DEFAULT_MODEL,
    max_tokens: int = 256,
    seed: int | None = 3,
    messages: Sequence[ChatMessage] = (),
    **fields: Any,
) -> GenerationRequest:
    return GenerationRequest(
        messages=tuple(messages) or (ChatMessage("user", text),),
        model=model,
        max_tokens=max_tokens,
        seed=seed,
        **fields,
    )


async def run(generation_request: GenerationRequest) -> list[TokenDelta]:
    engine = SimulatedEngine(tokens_per_s=0)
    engine.check(generation_request)
    return [delta async for delta in engine.stream(generation_request)]


def calls_of(deltas: Sequence[TokenDelta]) -> dict[int, dict[str, Any]]:
    """Tool calls joined from their fragments, with the fragments counted."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        for fragment in delta.tool_calls:
            call = calls.setdefault(fragment.index, {"arguments": "", "fragments": 0})
            if fragment.id is not None:
                assert "id" not in call, "id, type and name come with the first fragment only"
                call.update(id=fragment.id, name=fragment.name, type=fragment.type)
            else:
                assert fragment.name is None
                assert fragment.type is None
            call["arguments"] += fragment.arguments
            call["fragments"] += 1
    return calls


# -- plain text ------------------------------------------------------------------------------


async def test_plain_answer_is_the_word_generators_text_and_deterministic() -> None:
    plain = request(max_tokens=40)
    deltas = await run(plain)
    assert "".join(delta.text for delta in deltas) == "".join(simulated_tokens(plain)[:40])
    assert all(not (d.reasoning or d.tool_calls or d.refusal) for d in deltas)
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.reasoning_tokens is None  # the plain model does not reason
    assert await run(plain) == deltas


def test_answers_share_their_token_strings() -> None:
    """An open stream holds its answer's list, not a copy of every token's text."""
    first = simulated_tokens(request(seed=1), 200)
    second = simulated_tokens(request(seed=2), 200)
    shared = {token for token in first if token in second}
    assert shared
    by_text = {token: token for token in second}
    assert all(by_text[token] is token for token in first if token in shared)


async def test_a_straddling_stop_leaks_none_of_its_characters() -> None:
    """ ". A" arrives as "…." then " A…": the first token must not leak its period."""
    for seed in range(40):
        full = "".join(simulated_tokens(request(seed=seed)))
        if ". A" in full:
            break
    else:
        raise AssertionError("no seed gives a '. A' to stop at")
    deltas = await run(request(seed=seed, stop=("never there", ". A")))
    assert "".join(delta.text for delta in deltas) == full[: full.index(". A")]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].stop_sequence == ". A"  # which stop ended it
    unstopped = await run(request(seed=seed, stop=("never there",)))
    assert unstopped[-1].finish_reason == "stop"
    assert unstopped[-1].stop_sequence is None


# -- tool calls ------------------------------------------------------------------------------


async def test_a_forced_call_streams_schema_valid_arguments_in_fragments() -> None:
    deltas = await run(request(tools=(WEATHER, CLOCK), tool_choice="get_weather"))
    calls = calls_of(deltas)
    assert list(calls) == [0]
    call = calls[0]
    assert call["name"] == "get_weather"
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert len(call["id"]) == 29
    assert call["fragments"] >= 4  # the header, then several argument pieces
    jsonschema.validate(json.loads(call["arguments"]), WEATHER.parameters)
    assert deltas[-1].finish_reason == "tool_calls"
    assert not any(delta.text for delta in deltas)
    assert await run(request(tools=(WEATHER, CLOCK), tool_choice="get_weather")) == deltas


@pytest.mark.parametrize(
    ("text", "choice", "parallel", "called"),
    [
        ("What is the weather in Paris?", None, None, []),  # no tool named: text
        ("Please use get_weather for Paris.", None, None, ["get_weather"]),
        ("get weather and get-time, please", "auto", None, ["get_weather", "get_time"]),
        ("get weather and get-time, please", "auto", False, ["get_weather"]),
        ("Could you call a tool for me?", None, None, ["get_weather"]),
        ("What is the weather in Paris?", "required", None, ["get_weather"]),
        ("What time is it? get_time", "required", None, ["get_time"]),
        ("Please use get_weather.", "none", None, []),
        ("Nothing to see.", "get_time", None, ["get_time"]),
        ("forget_weather is not a tool name", None, None, []),  # whole words only
    ],
)
def test_when_a_tool_is_called(
    text: str, choice: str | None, parallel: bool | None, called: list[str]
) -> None:
    chosen = chosen_tools(
        request(text, tools=(WEATHER, CLOCK), tool_choice=choice, parallel_tool_calls=parallel)
    )
    assert [tool.name for tool in chosen] == called


async def test_parallel_calls_each_get_an_index_and_valid_arguments() -> None:
    deltas = await run(
        request("Use get_time, place_order and ping.", tools=(CLOCK, ORDER, NO_PARAMETERS))
    )
    calls = calls_of(deltas)
    assert [calls[index]["name"] for index in sorted(calls)] == ["get_time", "place_order", "ping"]
    assert len({call["id"] for call in calls.values()}) == 3
    for tool, index in ((CLOCK, 0), (ORDER, 1), (NO_PARAMETERS, 2)):
        jsonschema.validate(
            json.loads(calls[index]["arguments"]), {"type": "object", **tool.parameters}
        )
    assert json.loads(calls[2]["arguments"]) == {}
    # one call streams whole before the next starts
    order = [fragment.index for delta in deltas for fragment in delta.tool_calls]
    assert order == sorted(order)


async def test_after_a_tool_result_the_answer_is_text() -> None:
    messages = (
        ChatMessage("user", "Use get_weather for Paris."),
        ChatMessage("assistant", "", tool_calls=(ToolCall("call_1", "get_weather", "{}"),)),
        ChatMessage("tool", '{"temperature": 21}', tool_call_id="call_1"),
    )
    deltas = await run(request(messages=messages, tools=(WEATHER,)))
    assert not calls_of(deltas)
    assert "".join(delta.text for delta in deltas)
    assert deltas[-1].finish_reason in ("stop", "length")


async def test_max_tokens_cuts_a_call_with_finish_length() -> None:
    deltas = await run(request(tools=(ORDER,), tool_choice="required", max_tokens=5))
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.completion_tokens == 5


# -- JSON answers and refusals -----------------------------------------------------------


async def test_json_schema_answers_validate_and_stream_in_pieces() -> None:
    schema = ORDER.parameters
    for seed in range(5):
        form = ResponseFormat("json_schema", "order", schema, strict=True)
        deltas = await run(request(seed=seed, response_format=form, max_tokens=1000))
        pieces = [delta.text for delta in deltas if delta.text]
        assert len(pieces) > 5
        jsonschema.validate(json.loads("".join(pieces)), schema)
        assert deltas[-1].finish_reason == "stop"


async def test_json_object_answers_are_one_object() -> None:
    deltas = await run(request(response_format=ResponseFormat("json_object"), max_tokens=1000))
    value = json.loads("".join(delta.text for delta in deltas))
    assert isinstance(value, dict)
    assert value


async def test_asked_to_refuse_it_streams_a_refusal() -> None:
    deltas = await run(request("Please refuse to answer this."))
    assert "".join(delta.refusal for delta in deltas) == REFUSAL
    assert len([delta for delta in deltas if delta.refusal]) > 3
    assert not any(delta.text for delta in deltas)
    assert deltas[-1].finish_reason == "stop"


# -- the reasoning model ---------------------------------------------------------------------


async def test_reasoning_comes_first_and_is_counted() -> None:
    plain = request(max_tokens=300)
    deltas = await run(request(model=REASONING_MODEL, max_tokens=300))
    kinds = ["reasoning" if d.reasoning else "text" for d in deltas if d.reasoning or d.text]
    first_text = kinds.index("text")
    assert first_text > 10
    assert "reasoning" not in kinds[first_text:]
    usage = deltas[-1].usage
    assert usage is not None
    assert usage.reasoning_tokens == first_text
    assert usage.completion_tokens == len(kinds)
    # the answer after the reasoning is the plain model's
    plain_text = "".join(delta.text for delta in await run(plain))
    assert plain_text.startswith("".join(delta.text for delta in deltas))


async def test_reasoning_effort_sets_the_length_of_the_reasoning() -> None:
    lengths = []
    for effort in ("none", "minimal", "low", "medium", "high"):
        deltas = await run(request(model=REASONING_MODEL, reasoning_effort=effort, max_tokens=4000))
        usage = deltas[-1].usage
        assert usage is not None
        assert usage.reasoning_tokens is not None
        lengths.append(usage.reasoning_tokens)
        assert usage.reasoning_tokens <= EFFORT_TOKENS[effort]
    assert lengths[0] == 0
    assert lengths == sorted(lengths)
    assert len(set(lengths)) == len(lengths)


async def test_a_thinking_budget_caps_the_reasoning_and_the_answer_goes_on() -> None:
    deltas = await run(request(model=REASONING_MODEL, reasoning_budget_tokens=7, max_tokens=4000))
    usage = deltas[-1].usage
    assert usage is not None
    assert usage.reasoning_tokens is not None
    assert 0 < usage.reasoning_tokens <= 7
    assert sum(bool(delta.reasoning) for delta in deltas) == usage.reasoning_tokens
    assert deltas[-1].finish_reason == "stop"
    assert any(delta.text for delta in deltas)
    roomy = await run(request(model=REASONING_MODEL, reasoning_budget_tokens=4000, max_tokens=4000))
    default = await run(request(model=REASONING_MODEL, max_tokens=4000))
    assert roomy == default  # a budget above the effort's length changes nothing
    assert default[-1].usage is not None
    assert default[-1].usage.reasoning_tokens is not None
    assert default[-1].usage.reasoning_tokens > 7  # so the small budget did cut it


async def test_reasoning_then_a_tool_call() -> None:
    deltas = await run(request(model=REASONING_MODEL, tools=(WEATHER,), tool_choice="required"))
    reasoning = "".join(delta.reasoning for delta in deltas)
    assert reasoning.endswith("So I will call get_weather.")
    first_call = next(i for i, d in enumerate(deltas) if d.tool_calls)
    assert all(not d.reasoning for d in deltas[first_call:])
    assert deltas[-1].finish_reason == "tool_calls"


async def test_max_tokens_inside_the_reasoning_leaves_no_answer() -> None:
    deltas = await run(request(model=REASONING_MODEL, max_tokens=10))
    assert not any(delta.text for delta in deltas)
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.reasoning_tokens == 10


# -- refusals by name ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"reasoning_effort": "low"}, "reasoning_effort"),  # the plain model does not reason
        ({"reasoning_budget_tokens": 1024}, "reasoning_budget_tokens"),
        ({"logprobs": True}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"logit_bias": {"42": 10.0}}, "logit_bias"),
        ({"extra": {"store": True}}, "store"),
        (
            {
                "messages": (
                    ChatMessage(
                        "user",
                        "What is this?",
                        parts=(
                            ContentPart("text", {"type": "text", "text": "What is this?"}),
                            ContentPart(
                                "image_url", {"type": "image_url", "image_url": {"url": "x"}}
                            ),
                        ),
                    ),
                )
            },
            "messages[0].content",
        ),
        ({"messages": (ChatMessage("user", "hi", extra={"cache": 1}),)}, "messages[0].cache"),
        (
            {
                "tools": (
                    ToolSpec(
                        "impossible",
                        None,
                        {
                            "type": "object",
                            "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 2}},
                            "required": ["n"],
                        },
                    ),
                ),
                "tool_choice": "required",
            },
            "tools[0].function.parameters",
        ),
        (
            {
                "response_format": ResponseFormat(
                    "json_schema", "x", {"type": "string", "pattern": "(?=a)b"}
                )
            },
            "response_format.json_schema.schema",
        ),
    ],
)
def test_what_it_cannot_honour_is_refused_by_name(fields: dict[str, Any], param: str) -> None:
    engine = SimulatedEngine(tokens_per_s=0)
    with pytest.raises(EngineError) as caught:
        engine.check(request(**fields))
    assert caught.value.code == "unsupported_parameter"
    assert caught.value.param == param
    assert param.split("[")[0] in caught.value.message


def test_text_parts_with_extra_fields_are_read_as_text() -> None:
    part = {"type": "text", "text": "hi", "prompt_cache_breakpoint": {"mode": "explicit"}}
    message = ChatMessage("user", "hi", parts=(ContentPart("text", part),))
    SimulatedEngine(tokens_per_s=0).check(request(messages=(message,)))


def test_the_engine_serves_both_models() -> None:
    assert SimulatedEngine(tokens_per_s=0).models == (DEFAULT_MODEL, REASONING_MODEL)
    engine = SimulatedEngine(tokens_per_s=0, model="pinned")
    assert engine.models == ("pinned", REASONING_MODEL)
    engine.check(request(model=REASONING_MODEL, reasoning_effort="high"))


# -- pacing ----------------------------------------------------------------------------------


async def test_a_late_stream_catches_up_without_a_loop_pass_per_token() -> None:
    """Tokens already due go at once: a loop pass each would only make a late
    stream later (every 64th still lets the other tasks in)."""
    engine = SimulatedEngine(tokens_per_s=1000, fill_max_tokens=True)
    stream = engine.stream(request(max_tokens=150))
    first = await anext(stream)
    assert first.text
    time.sleep(0.3)  # noqa: ASYNC251 (holding the loop up is the point: every token is due)
    passes = 0
    done = False

    async def count_passes() -> None:
        nonlocal passes
        while not done:
            passes += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_passes())
    rest = [delta async for delta in stream]
    done = True
    await counter
    assert len(rest) == 150  # 149 tokens, then the final delta
    assert rest[-1].finish_reason == "length"
    assert passes <= 4  # the yields at tokens 64 and 128, and the counter's own end

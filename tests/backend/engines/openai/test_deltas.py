"""Every kind of delta an upstream streams reaches ssechat's deltas, once, whole.

The scripted upstream (``FaultyUpstream``'s ``script`` scenario) replays the
chunks a test lists in the request's ``x_script`` field: a field ssechat does
not know, so it also shows that unknown fields reach the upstream.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
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
    Usage,
)
from backend.engines.openai import estimate_prompt_tokens
from tests.backend.engines.openai.helpers import REQUEST, Upstream, make_engine, wait_disconnected


async def replay(
    upstream: Upstream, client: httpx.AsyncClient, script: list[dict[str, Any]], **fields: Any
) -> list[TokenDelta]:
    engine = make_engine(client, upstream.url("script"))
    request = dataclasses.replace(REQUEST, extra={"x_script": script}, **fields)
    return [delta async for delta in engine.stream(request)]


def assembled_calls(deltas: list[TokenDelta]) -> list[dict[str, Any]]:
    """Tool calls as a client assembles them: strings concatenated, as the SDKs do."""
    calls: dict[int, dict[str, Any]] = {}
    for delta in deltas:
        for fragment in delta.tool_calls:
            call = calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += fragment.id or ""
            call["name"] += fragment.name or ""
            call["arguments"] += fragment.arguments
    return [calls[index] for index in sorted(calls)]


def fragment(index: int, arguments: str, **more: Any) -> dict[str, Any]:
    """One ``tool_calls`` item; ``name`` goes into ``function``, the rest beside it."""
    function: dict[str, Any] = {"arguments": arguments}
    if "name" in more:
        function["name"] = more.pop("name")
    return {"index": index, **more, "function": function}


async def test_tool_call_ids_and_names_repeated_by_the_upstream_come_once(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    # llama-cpp-python's server: id, type and name in every fragment, plus the
    # legacy function_call mirror of the same call.
    pieces = ['{"city"', ': "Par', 'is"}', ""]
    script: list[dict[str, Any]] = [
        {
            "delta": {
                "content": None,
                "function_call": {"name": "get_weather", "arguments": piece},
                "tool_calls": [
                    fragment(0, piece, id="call_1", type="function", name="get_weather")
                ],
            }
        }
        for piece in pieces
    ]
    script.append({"delta": {}, "finish_reason": "tool_calls"})
    deltas = await replay(upstream, client, script)

    assert assembled_calls(deltas) == [
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    ]
    first = deltas[0].tool_calls[0]
    assert (first.index, first.type) == (0, "function")
    assert all(f.type is None for d in deltas[1:] for f in d.tool_calls)
    assert deltas[-1].finish_reason == "tool_calls"
    assert "".join(d.text for d in deltas) == ""


async def test_parallel_tool_calls_keep_their_indices(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    script: list[dict[str, Any]] = [
        {"delta": {"role": "assistant", "content": None}},
        {"delta": {"tool_calls": [fragment(0, "", id="call_a", type="function", name="f")]}},
        {"delta": {"tool_calls": [fragment(0, '{"x":')]}},
        {"delta": {"tool_calls": [fragment(1, '{"y":', id="call_b", type="function", name="g")]}},
        {"delta": {"tool_calls": [fragment(0, "1}"), fragment(1, "2}")]}},
        {"delta": {}, "finish_reason": "tool_calls"},
    ]
    deltas = await replay(upstream, client, script)

    assert assembled_calls(deltas) == [
        {"id": "call_a", "name": "f", "arguments": '{"x":1}'},
        {"id": "call_b", "name": "g", "arguments": '{"y":2}'},
    ]


async def test_a_call_without_an_id_gets_one(upstream: Upstream, client: httpx.AsyncClient) -> None:
    script: list[dict[str, Any]] = [
        {"delta": {"tool_calls": [fragment(0, "{}", name="f")]}},
        {"delta": {}, "finish_reason": "tool_calls"},
    ]
    [call] = assembled_calls(await replay(upstream, client, script))
    assert call["id"].startswith("call_")
    assert call["name"] == "f"


async def test_surrogate_halves_in_tool_arguments_become_whole_characters(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    script: list[dict[str, Any]] = [
        {"delta": {"tool_calls": [fragment(0, '{"e": "\ud83d', id="c", name="f")]}},
        {"delta": {"tool_calls": [fragment(0, '\ude00"}')]}},
        {"delta": {}, "finish_reason": "tool_calls"},
    ]
    deltas = await replay(upstream, client, script)

    assert [f.arguments for d in deltas for f in d.tool_calls] == ['{"e": "', '😀"}']


@pytest.mark.parametrize(
    "fields",
    [
        ("reasoning_content",),  # DeepSeek, vLLM, llama.cpp
        ("reasoning",),  # OpenRouter, newer vLLM, Ollama
        ("reasoning_content", "reasoning"),  # both, same text: passed on once
    ],
)
async def test_reasoning_fields_map_onto_reasoning_once(
    upstream: Upstream, client: httpx.AsyncClient, fields: tuple[str, ...]
) -> None:
    thoughts = ["Let me think", " about 流式", " this."]
    script: list[dict[str, Any]] = [{"delta": dict.fromkeys(fields, piece)} for piece in thoughts]
    script += [{"delta": {"content": "Answer."}}, {"delta": {}, "finish_reason": "stop"}]
    deltas = await replay(upstream, client, script)

    assert "".join(d.reasoning for d in deltas) == "".join(thoughts)
    assert "".join(d.text for d in deltas) == "Answer."


async def test_refusal_logprobs_and_usage_details_pass_through(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    logprobs = {
        "content": [
            {"token": "No", "logprob": -0.1, "bytes": [78, 111], "top_logprobs": []},
        ],
        "refusal": None,
    }
    usage = {
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "prompt_tokens_details": {"cached_tokens": 16},
        "completion_tokens_details": {"reasoning_tokens": 8},
    }
    script: list[dict[str, Any]] = [
        {"delta": {"content": "No"}, "logprobs": logprobs},
        {"delta": {"refusal": "I can't help "}},
        {"delta": {"refusal": "with that."}},
        {"delta": {}, "finish_reason": "stop"},
        {"usage": usage},
    ]
    deltas = await replay(upstream, client, script)

    assert deltas[0].text == "No"
    assert deltas[0].logprobs == logprobs
    assert "".join(d.refusal for d in deltas) == "I can't help with that."
    assert deltas[-1].usage == Usage(30, 12, reasoning_tokens=8, cached_tokens=16)


@pytest.mark.parametrize(
    ("upstream_reason", "ours"),
    [
        ("stop", "stop"),
        ("length", "length"),
        ("tool_calls", "tool_calls"),
        ("content_filter", "content_filter"),
        ("function_call", "tool_calls"),  # the pre-tools API
        ("eos_token", "stop"),  # TGI; any reason we have no word for ends as "stop"
    ],
)
async def test_finish_reasons_map_onto_ours(
    upstream: Upstream, client: httpx.AsyncClient, upstream_reason: str, ours: str
) -> None:
    script: list[dict[str, Any]] = [
        {"delta": {"content": "x"}},
        {"delta": {}, "finish_reason": upstream_reason},
    ]
    deltas = await replay(upstream, client, script)
    assert deltas[-1].finish_reason == ours


@pytest.mark.parametrize(
    ("stop_reason", "reported"),
    [
        ("\n\nUser:", "\n\nUser:"),  # one of the request's stops: vLLM names it
        (106, None),  # a stop token id, not a string
        ("<|im_end|>", None),  # a stop the client did not ask for
        (None, None),
    ],
)
async def test_the_upstream_s_matched_stop_is_passed_on_when_it_is_the_client_s(
    upstream: Upstream, client: httpx.AsyncClient, stop_reason: object, reported: str | None
) -> None:
    script: list[dict[str, Any]] = [
        {"delta": {"content": "x"}},
        {"delta": {}, "finish_reason": "stop", "stop_reason": stop_reason},
    ]
    deltas = await replay(upstream, client, script)
    assert (deltas[-1].finish_reason, deltas[-1].stop_sequence) == ("stop", reported)
    cut = await replay(
        upstream, client, [{"delta": {}, "finish_reason": "length", "stop_reason": "\n\nUser:"}]
    )
    assert cut[-1].stop_sequence is None  # only a "stop" finish ends at a stop sequence


@pytest.mark.parametrize(
    "endless",
    [
        {"content": "t"},
        {"reasoning_content": "hmm"},
        {"refusal": "no"},
        {"tool_calls": [fragment(0, "x", id="c", name="f")]},
    ],
)
async def test_an_upstream_ignoring_max_tokens_is_cut_whatever_it_streams(
    upstream: Upstream, client: httpx.AsyncClient, endless: dict[str, Any]
) -> None:
    script = [{"delta": endless, "repeat": 100_000}]
    deltas = await replay(upstream, client, script, max_tokens=5)

    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage == Usage(estimate_prompt_tokens(REQUEST), 5)
    assert sum(bool(d.text or d.reasoning or d.refusal or d.tool_calls) for d in deltas) == 5
    assert await wait_disconnected(upstream.last())


async def test_every_request_field_reaches_the_upstream(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    image = ContentPart("image_url", {"url": "data:image/png;base64,AAAA", "detail": "low"})
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    request = GenerationRequest(
        messages=(
            ChatMessage("developer", "Be brief."),
            ChatMessage("user", "What is in this picture?", parts=(image,), name="ann"),
            ChatMessage("assistant", "", tool_calls=(ToolCall("c1", "look", '{"at": "sky"}'),)),
            ChatMessage("tool", "clouds", tool_call_id="c1"),
        ),
        model="upstream-model",
        max_tokens=64,
        temperature=0.2,
        top_p=0.8,
        seed=3,
        stop=("END",),
        tools=(ToolSpec("look", "Look at something.", schema, strict=True),),
        tool_choice="look",
        parallel_tool_calls=False,
        response_format=ResponseFormat("json_schema", name="out", schema=schema, strict=True),
        reasoning_effort="low",
        logprobs=True,
        top_logprobs=2,
        top_k=40,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        logit_bias={"42": -100.0},
        user="u-1",
        metadata={"trace": "t-1"},
        extra={"x_script": [{"delta": {}, "finish_reason": "stop"}], "service_tier": "flex"},
    )
    engine = make_engine(client, upstream.url("script"))
    engine.check(request)
    [delta async for delta in engine.stream(request)]

    assert upstream.last().body == {
        "model": "upstream-model",
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": dict(image.data)},
                ],
                "name": "ann",
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "look", "arguments": '{"at": "sky"}'},
                    }
                ],
            },
            {"role": "tool", "content": "clouds", "tool_call_id": "c1"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 64,
        "temperature": 0.2,
        "top_p": 0.8,
        "seed": 3,
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "look",
                    "description": "Look at something.",
                    "parameters": schema,
                    "strict": True,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "look"}},
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": schema, "strict": True},
        },
        "reasoning_effort": "low",
        "logprobs": True,
        "top_logprobs": 2,
        "top_k": 40,
        "presence_penalty": 0.5,
        "frequency_penalty": 0.25,
        "logit_bias": {"42": -100.0},
        "user": "u-1",
        "metadata": {"trace": "t-1"},
        "x_script": [{"delta": {}, "finish_reason": "stop"}],
        "service_tier": "flex",
    }


async def test_a_thinking_budget_is_refused_by_name(client: httpx.AsyncClient) -> None:
    engine = make_engine(client, "http://127.0.0.1:9/v1")
    with pytest.raises(EngineError) as caught:
        engine.check(dataclasses.replace(REQUEST, reasoning_budget_tokens=2048))
    assert (caught.value.param, caught.value.code) == (
        "reasoning_budget_tokens",
        "unsupported_parameter",
    )
    assert "reasoning_effort" in caught.value.message
    engine.check(dataclasses.replace(REQUEST, reasoning_effort="high", top_k=5))

"""The whole Chat Completions request over HTTP: accepted when it is right, and a
400 naming the field (OpenAI's spelling) with a readable message when it is not.

A real server on a real socket with the simulated engine; every bad input is
sent streamed and not streamed, since both are refused before the first byte.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.app import create_app
from backend.config import Settings
from backend.engines.base import ChatMessage, GenerationRequest
from backend.engines.registry import EngineSet
from backend.engines.simulated import SimulatedEngine, simulated_tokens
from backend.generation.chat_request import chat_generation_request
from backend.generation.request import RequestLimits
from backend.schemas.chat import ChatCompletionRequest
from tests.servers import serve_app
from tests.whatwg_sse import parse_stream

CHAT = "/v1/chat/completions"
USER = {"role": "user", "content": "What is the weather in Paris?"}
PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather.", "parameters": PARAMETERS},
}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
ASSISTANT_CALL = {"role": "assistant", "content": None, "tool_calls": [CALL]}


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    app = create_app(Settings(engine="simulated", sim_tokens_per_s=0.0))
    with serve_app(app) as base_url, httpx.Client(base_url=base_url, timeout=30) as http:
        yield http


def with_tool(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


BAD: list[tuple[dict[str, Any], str, str]] = [
    # (body fields beyond messages=[USER] unless given, param, a piece of the message)
    (
        {"tools": [with_tool({"type": "object", "properties": {"a": {"type": "strnig"}}})]},
        "tools[0].function.parameters",
        "not a valid JSON Schema",
    ),
    ({"tools": [with_tool({"type": "string"})]}, "tools[0].function.parameters", "object"),
    ({"tools": [with_tool([1, 2])]}, "tools[0].function.parameters", "valid dictionary"),
    (
        {"tools": [{"type": "function", "function": {"name": "get weather"}}]},
        "tools[0].function.name",
        "pattern",
    ),
    ({"tools": [{"type": "function"}]}, "tools[0].function", "needs 'function'"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0].type", "function tools"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name", "unique"),
    ({"tools": [{**WEATHER, "extra": 1}]}, "tools[0].extra", "Extra inputs"),
    (
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
        "tool_choice",
        "'nope'",
    ),
    (
        {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {}}},
        "tool_choice.function",
        "name",
    ),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice", "'sometimes'"),
    ({"tool_choice": "required"}, "tool_choice", "needs tools"),
    (
        {
            "tools": [WEATHER],
            "tool_choice": {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "nope"}}],
                },
            },
        },
        "tool_choice.allowed_tools.tools[0]",
        "'nope'",
    ),
    ({"tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls", "boolean"),
    (
        {"messages": [USER, ASSISTANT_CALL, {"role": "tool", "content": "21"}]},
        "messages[2].tool_call_id",
        "tool_call_id",
    ),
    (
        {
            "messages": [
                USER,
                ASSISTANT_CALL,
                {"role": "tool", "content": "21", "tool_call_id": "x"},
            ]
        },
        "messages[2].tool_call_id",
        "matches no call",
    ),
    (
        {"messages": [USER, {"role": "tool", "content": "21", "tool_call_id": "call_1"}]},
        "messages[1].role",
        "must answer a tool call",
    ),
    ({"messages": [USER, ASSISTANT_CALL, USER]}, "messages[1].tool_calls", "call_1"),
    ({"messages": [USER, ASSISTANT_CALL]}, "messages[1].tool_calls", "call_1"),
    ({"messages": [{**USER, "tool_calls": [CALL]}]}, "messages[0].tool_calls", "assistant"),
    ({"messages": [{**USER, "tool_call_id": "call_1"}]}, "messages[0].tool_call_id", "tool"),
    (
        {
            "messages": [
                {
                    "role": "system",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                    ],
                },
                USER,
            ]
        },
        "messages[0].content[0].type",
        "system message",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "messages[0].content[0]",
        "image_url.url",
    ),
    (
        {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
        "messages[0].content[0]",
        "needs 'text'",
    ),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "a string, an array"),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "response_format.json_schema.name",
        "name",
    ),
    (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": 5}},
            }
        },
        "response_format.json_schema.schema",
        "not a valid JSON Schema",
    ),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "required"),
    ({"response_format": {"type": "yaml"}}, "response_format.type", "json_schema"),
    ({"n": 2}, "n", "one choice"),
    ({"top_logprobs": 3}, "top_logprobs", "logprobs: true"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort", "medium"),
    ({"presence_penalty": 3}, "presence_penalty", "2"),
    ({"logit_bias": {"42": 200}}, "logit_bias.42", "100"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "16"),
    # fields the simulated engine cannot honour: refused by name, never ignored
    ({"reasoning_effort": "low"}, "reasoning_effort", "does not reason"),
    ({"logprobs": True}, "logprobs", "not supported"),
    ({"frequency_penalty": 0.5}, "frequency_penalty", "not supported"),
    ({"store": True}, "store", "not supported"),  # unknown fields travel in `extra`
    ({"web_search_options": {}}, "web_search_options", "not supported"),
    (
        {"messages": [{**USER, "cache_control": {"type": "ephemeral"}}]},
        "messages[0].cache_control",
        "not supported",
    ),
    (
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                    ],
                }
            ]
        },
        "messages[0].content",
        "image_url",
    ),
    (
        {
            "tools": [
                with_tool(
                    {
                        "type": "object",
                        "properties": {"n": {"type": "integer", "minimum": 3, "maximum": 2}},
                        "required": ["n"],
                    }
                )
            ],
            "tool_choice": "required",
        },
        "tools[0].function.parameters",
        "cannot write arguments",
    ),
]


@pytest.mark.parametrize(("fields", "param", "needle"), BAD, ids=[case[1] for case in BAD])
def test_bad_input_is_a_400_naming_the_field(
    client: httpx.Client, fields: dict[str, Any], param: str, needle: str
) -> None:
    for stream in (False, True):
        response = client.post(CHAT, json={"messages": [USER], "stream": stream, **fields})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["param"] == param, error
        assert needle in error["message"], error
        assert error["type"] == "invalid_request_error"


def test_the_whole_request_the_sdk_sends_is_accepted(client: httpx.Client) -> None:
    body = {
        "model": "ssechat-simulated-reasoning",
        "messages": [
            {"role": "developer", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "Use get_weather for Paris, please.", "name": "ada"},
        ],
        "tools": [WEATHER, {"type": "function", "function": {"name": "ping", "strict": True}}],
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "response_format": {"type": "text"},
        "reasoning_effort": "low",
        "max_completion_tokens": 300,
        "temperature": None,
        "top_p": 0.9,
        "seed": 1,
        "stop": ["\n\nUser:"],
        "user": "u-1",
        "metadata": {"trace": "abc"},
        "n": 1,
        "stream_options": None,
        "store": None,  # null asks for nothing: not refused
    }
    whole = client.post(CHAT, json=body)
    assert whole.status_code == 200, whole.text
    message = whole.json()["choices"][0]["message"]
    assert [call["function"]["name"] for call in message["tool_calls"]] == ["get_weather"]
    assert message["reasoning_content"].endswith("So I will call get_weather.")
    assert whole.json()["choices"][0]["finish_reason"] == "tool_calls"


def test_a_conversation_with_tool_results_goes_on_in_text(client: httpx.Client) -> None:
    first = client.post(
        CHAT, json={"messages": [USER], "tools": [WEATHER], "tool_choice": "required"}
    )
    assistant = first.json()["choices"][0]["message"]
    # An SDK sends the message back as it came (nulls and all), then the results.
    results = [
        {"role": "tool", "tool_call_id": call["id"], "content": [{"type": "text", "text": "21 C"}]}
        for call in assistant["tool_calls"]
    ]
    echoed = {**assistant, "audio": None, "function_call": None, "annotations": []}
    messages = [USER, echoed, *results]
    second = client.post(CHAT, json={"messages": messages, "tools": [WEATHER]})
    assert second.status_code == 200, second.text
    answer = second.json()["choices"][0]
    assert answer["message"]["content"]
    assert "tool_calls" not in answer["message"]
    assert answer["finish_reason"] in ("stop", "length")


def test_a_straddling_stop_is_not_leaked_streamed_or_not(client: httpx.Client) -> None:
    prompt = "Explain Server-Sent Events."
    for seed in range(40):
        request = GenerationRequest(
            (ChatMessage("user", prompt),), "ssechat-simulated", 256, seed=seed
        )
        full = "".join(simulated_tokens(request))
        if ". A" in full:
            break
    else:
        raise AssertionError("no seed gives a '. A' to stop at")
    body = {"messages": [{"role": "user", "content": prompt}], "seed": seed, "stop": [". A"]}
    whole = client.post(CHAT, json=body).json()["choices"][0]
    assert whole["message"]["content"] == full[: full.index(". A")]
    assert (whole["finish_reason"], whole["stop_reason"]) == ("stop", ". A")
    raw = client.post(CHAT, json={**body, "stream": True}).content
    events, _ = parse_stream(raw)
    chunks = [json.loads(event.data) for event in events[:-1]]
    streamed = "".join(
        (chunk["choices"] or [{"delta": {}}])[0]["delta"].get("content") or "" for chunk in chunks
    )
    assert streamed == whole["message"]["content"]
    final = chunks[-1]["choices"][0]
    assert (final["finish_reason"], final["stop_reason"]) == ("stop", ". A")
    assert all("stop_reason" not in chunk["choices"][0] for chunk in chunks[:-1])


@pytest.mark.parametrize(
    ("fields", "limit", "spelled"),
    [
        ({"max_tokens": 30}, 30, "max_tokens"),
        ({"max_completion_tokens": 40}, 40, "max_completion_tokens"),
        ({"max_tokens": 30, "max_completion_tokens": 40}, 40, "max_completion_tokens"),
        ({}, Settings().default_max_tokens, "max_tokens"),
    ],
)
def test_the_limit_keeps_the_client_s_spelling_and_sampling_not_sent_stays_unset(
    fields: dict[str, Any], limit: int, spelled: str
) -> None:
    settings = Settings(engine="simulated")
    engines = EngineSet(primary=SimulatedEngine(tokens_per_s=0))
    engines.by_model = {model: engines.primary for model in engines.primary.models}
    body = ChatCompletionRequest.model_validate({"messages": [USER], **fields})
    request, _ = chat_generation_request(body, engines, RequestLimits.from_settings(settings))
    assert (request.max_tokens, request.max_tokens_field) == (limit, spelled)
    assert (request.temperature, request.top_p) == (None, None)

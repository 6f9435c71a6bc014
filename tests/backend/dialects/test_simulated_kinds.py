"""Tool calls, reasoning and JSON answers from the simulated engine, through the
official SDKs of the Responses API and Anthropic Messages, on a real server.

The simulated engine calls a tool its user names, answers a tool's result in
text, reasons first as ``ssechat-simulated-reasoning``, and writes JSON valid
against a ``json_schema``: each dialect renders the same answer its own way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from anthropic import Anthropic
from openai import OpenAI

from backend.engines.base import Engine
from tests.backend.dialects.helpers import (
    QUESTION,
    SIMULATED,
    SYSTEM,
    datas,
    dialect_server,
    read_sse,
)

REASONING = "ssechat-simulated-reasoning"
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 2},
        "unit": {"enum": ["c", "f"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 7},
    },
    "required": ["city", "unit", "days"],
    "additionalProperties": False,
}
ASKS_FOR_THE_TOOL = "What is the weather in Oslo this week? Use get_weather."
# The same tool in each dialect's spelling.
CHAT_TOOL = {
    "type": "function",
    "function": {"name": "get_weather", "description": "Weather.", "parameters": WEATHER_SCHEMA},
}
RESPONSES_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather.",
    "parameters": WEATHER_SCHEMA,
}
MESSAGES_TOOL: Any = {
    "name": "get_weather",
    "description": "Weather.",
    "input_schema": WEATHER_SCHEMA,
}
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, list[Engine]]]:
    with dialect_server() as running:
        yield running


# -- Responses ------------------------------------------------------------------------------
def test_responses_function_calls_then_a_function_call_output(openai_sdk: OpenAI) -> None:
    events = list(
        openai_sdk.responses.create(
            model=SIMULATED, input=ASKS_FOR_THE_TOOL, tools=[RESPONSES_TOOL], stream=True
        )
    )
    types = [event.type for event in events]
    assert types[2] == "response.output_item.added"
    assert types.count("response.function_call_arguments.delta") > 1  # in pieces
    assert types[-4:] == [
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = events[-1]
    assert final.type == "response.completed"
    (call,) = final.response.output
    assert call.type == "function_call"
    assert call.name == "get_weather"
    assert call.call_id.startswith("call_")
    pieces = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert pieces == call.arguments
    jsonschema.validate(json.loads(call.arguments), WEATHER_SCHEMA)

    answer = openai_sdk.responses.create(
        model=SIMULATED,
        previous_response_id=final.response.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "4 C, rain"}],
        tools=[RESPONSES_TOOL],
    )
    assert answer.status == "completed"
    assert [item.type for item in answer.output] == ["message"]  # after a result: text
    assert answer.output_text


def test_responses_reasoning_events_follow_the_effort(openai_sdk: OpenAI) -> None:
    def reasoned(effort: Any) -> tuple[str, int, list[str]]:
        events = list(
            openai_sdk.responses.create(
                model=REASONING, input=QUESTION, reasoning={"effort": effort}, stream=True
            )
        )
        final = events[-1]
        assert final.type == "response.completed"
        assert final.response.usage is not None
        thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
        reasoning = final.response.output[0]
        assert reasoning.type == "reasoning"
        assert reasoning.content is not None
        assert reasoning.content[0].text == thought
        types = [str(e.type) for e in events if e.type.startswith("response.reasoning")]
        return thought, final.response.usage.output_tokens_details.reasoning_tokens, types

    low, low_tokens, types = reasoned("low")
    high, high_tokens, _ = reasoned("high")
    assert types[-1] == "response.reasoning_text.done"
    assert 0 < low_tokens < high_tokens
    assert low.endswith("I can answer now.")
    assert len(low) < len(high)


def test_responses_json_schema_answers_validate(openai_sdk: OpenAI) -> None:
    text_format: Any = {
        "format": {"type": "json_schema", "name": "forecast", "schema": WEATHER_SCHEMA}
    }
    streamed = list(
        openai_sdk.responses.create(model=SIMULATED, input=QUESTION, text=text_format, stream=True)
    )
    final = streamed[-1]
    assert final.type == "response.completed"
    jsonschema.validate(json.loads(final.response.output_text), WEATHER_SCHEMA)
    whole = openai_sdk.responses.create(model=SIMULATED, input=QUESTION, text=text_format)
    assert whole.output_text == final.response.output_text
    assert whole.text is not None
    assert whole.text.format is not None
    assert whole.text.format.type == "json_schema"


# -- Anthropic Messages ---------------------------------------------------------------------
def test_messages_tool_use_blocks_then_a_tool_result(
    anthropic_sdk: Anthropic, http: httpx.Client
) -> None:
    asked: dict[str, Any] = {
        "model": SIMULATED,
        "max_tokens": 200,
        "messages": [{"role": "user", "content": ASKS_FOR_THE_TOOL}],
        "tools": [MESSAGES_TOOL],
    }
    with anthropic_sdk.messages.stream(**asked) as stream:
        final = stream.get_final_message()
    (use,) = final.content
    assert use.type == "tool_use"
    assert use.name == "get_weather"
    jsonschema.validate(use.input, WEATHER_SCHEMA)
    assert final.stop_reason == "tool_use"
    _, events, _ = read_sse(http, "POST", "/v1/messages", json={**asked, "stream": True})
    payloads = datas(events)
    pieces = [
        p["delta"]["partial_json"]
        for p in payloads
        if p["type"] == "content_block_delta" and p["delta"]["type"] == "input_json_delta"
    ]
    assert len(pieces) > 1
    assert json.loads("".join(pieces)) == use.input

    answer = anthropic_sdk.messages.create(
        **{
            **asked,
            "messages": [
                *asked["messages"],
                {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": use.id, "content": "4 C, rain"}
                    ],
                },
            ],
        }
    )
    assert [block.type for block in answer.content] == ["text"]
    assert answer.stop_reason == "end_turn"


def test_messages_thinking_blocks_from_the_reasoning_model(
    anthropic_sdk: Anthropic, http: httpx.Client
) -> None:
    asked: dict[str, Any] = {
        "model": REASONING,
        "max_tokens": 2048,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": QUESTION}],
        "thinking": THINKING,
    }
    with anthropic_sdk.messages.stream(**asked) as stream:
        final = stream.get_final_message()
    thinking, text = final.content
    assert thinking.type == "thinking"
    assert thinking.thinking.endswith("I can answer now.")
    assert thinking.signature
    assert text.type == "text"
    _, events, _ = read_sse(http, "POST", "/v1/messages", json={**asked, "stream": True})
    kinds = [p["delta"]["type"] for p in datas(events) if p["type"] == "content_block_delta"]
    first_text = kinds.index("text_delta")
    assert set(kinds[: first_text - 1]) == {"thinking_delta"}
    assert kinds[first_text - 1] == "signature_delta"


# -- one answer, three dialects -------------------------------------------------------------
def test_the_same_request_gets_the_same_answer_in_every_dialect(
    http: httpx.Client, openai_sdk: OpenAI, anthropic_sdk: Anthropic
) -> None:
    question = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    chat = http.post(
        "/v1/chat/completions", json={"model": REASONING, "messages": question, "max_tokens": 2048}
    ).json()["choices"][0]["message"]
    responses = openai_sdk.responses.create(
        model=REASONING, instructions=SYSTEM, input=QUESTION, max_output_tokens=2048
    )
    # Anthropic's thinking budget must be below max_tokens; it caps no more than the effort.
    messages = anthropic_sdk.messages.create(
        model=REASONING,
        max_tokens=2048,
        system=SYSTEM,
        messages=[{"role": "user", "content": QUESTION}],
        thinking=THINKING,
    )
    reasoning, _message = responses.output
    assert reasoning.type == "reasoning"
    assert reasoning.content is not None
    thinking, text = messages.content
    assert thinking.type == "thinking"
    assert text.type == "text"
    assert chat["reasoning_content"] == reasoning.content[0].text == thinking.thinking
    assert chat["content"] == responses.output_text == text.text

    # A tool call: the same id, name and arguments.
    asked_chat = [{"role": "user", "content": ASKS_FOR_THE_TOOL}]
    (chat_call,) = http.post(
        "/v1/chat/completions",
        json={"model": SIMULATED, "messages": asked_chat, "tools": [CHAT_TOOL]},
    ).json()["choices"][0]["message"]["tool_calls"]
    responses_call = openai_sdk.responses.create(
        model=SIMULATED, input=ASKS_FOR_THE_TOOL, tools=[RESPONSES_TOOL]
    ).output[0]
    assert responses_call.type == "function_call"
    (messages_call,) = anthropic_sdk.messages.create(
        model=SIMULATED,
        max_tokens=200,
        messages=[{"role": "user", "content": ASKS_FOR_THE_TOOL}],
        tools=[MESSAGES_TOOL],
    ).content
    assert messages_call.type == "tool_use"
    function = chat_call["function"]
    assert (chat_call["id"], function["name"]) == (responses_call.call_id, responses_call.name)
    assert (chat_call["id"], function["name"]) == (messages_call.id, messages_call.name)
    assert function["arguments"] == responses_call.arguments
    assert json.loads(function["arguments"]) == messages_call.input

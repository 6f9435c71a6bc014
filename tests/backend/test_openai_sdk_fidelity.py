"""The official ``openai`` SDK's helpers against a live ``python -m backend``: tool
calls, reasoning, refusals and structured outputs reach it whole.

``client.chat.completions.stream(...)`` accumulates tool calls and emits its
typed events; ``client.chat.completions.parse(response_format=Model)`` turns
the JSON answer into a Pydantic object; a whole completion carries
``message.tool_calls``, ``reasoning_content``, ``refusal`` and usage details.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Literal

import jsonschema
import pytest
from openai import OpenAI, pydantic_function_tool
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam
from pydantic import BaseModel, Field

from tests.servers import run_backend_process

REASONING = "ssechat-simulated-reasoning"
PARAMETERS = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": PARAMETERS, "strict": True},
}


class Forecast(BaseModel):
    city: str
    days: list[int] = Field(min_length=1, max_length=5)
    unit: Literal["celsius", "fahrenheit"]
    windy: bool


class Lookup(BaseModel):
    """Look a word up."""

    word: str
    language: Literal["en", "fr"]


@pytest.fixture(scope="module")
def sdk() -> Iterator[OpenAI]:
    env = {"SSECHAT_ENGINE": "simulated", "SSECHAT_SIM_TOKENS_PER_S": "0"}
    with run_backend_process(env) as url:
        yield OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)


def ask(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def test_both_models_are_listed(sdk: OpenAI) -> None:
    ids = [model.id for model in sdk.models.list().data]
    assert ids[:2] == ["ssechat-simulated", REASONING]


def test_stream_helper_accumulates_tool_calls(sdk: OpenAI) -> None:
    kinds: list[str] = []
    pieces: list[str] = []
    with sdk.chat.completions.stream(
        model="ssechat-simulated",
        messages=ask("Use get_weather and lookup for Paris."),
        tools=[WEATHER, pydantic_function_tool(Lookup, name="lookup")],
        stream_options={"include_usage": True},
        seed=4,
    ) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "tool_calls.function.arguments.delta":
                pieces.append(event.arguments_delta)
        final = stream.get_final_completion()
    choice = final.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert [call.function.name for call in calls] == ["get_weather", "lookup"]
    assert all(call.id.startswith("call_") for call in calls)
    assert "".join(pieces) == "".join(call.function.arguments for call in calls)
    assert kinds.count("tool_calls.function.arguments.delta") > 4
    assert kinds.count("tool_calls.function.arguments.done") == 2
    weather = json.loads(calls[0].function.arguments)
    jsonschema.validate(weather, PARAMETERS)
    assert calls[0].function.parsed_arguments == weather  # strict tools are parsed
    assert isinstance(calls[1].function.parsed_arguments, Lookup)
    assert not choice.message.content
    assert final.usage is not None
    assert final.usage.completion_tokens > 4


def test_stream_helper_with_reasoning(sdk: OpenAI) -> None:
    reasoning: list[str] = []
    with sdk.chat.completions.stream(
        model=REASONING,
        messages=ask("Explain Server-Sent Events."),
        reasoning_effort="low",
        max_completion_tokens=120,
        stream_options={"include_usage": True},
        seed=2,
    ) as stream:
        for event in stream:
            if event.type == "chunk" and event.chunk.choices:
                delta = event.chunk.choices[0].delta
                extra = delta.model_extra or {}
                if "reasoning_content" in extra:
                    assert not delta.content  # reasoning comes before the answer
                    reasoning.append(extra["reasoning_content"])
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert (message.model_extra or {})["reasoning_content"] == "".join(reasoning)
    assert "".join(reasoning).startswith("The user asks")
    assert message.content
    usage = final.usage
    assert usage is not None
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == len(reasoning)


def test_parse_with_a_pydantic_model(sdk: OpenAI) -> None:
    for seed in (1, 2, 3):
        completion = sdk.chat.completions.parse(
            model="ssechat-simulated",
            messages=ask("A forecast, please."),
            response_format=Forecast,
            seed=seed,
            max_tokens=400,
        )
        message = completion.choices[0].message
        assert isinstance(message.parsed, Forecast)
        assert message.parsed == Forecast.model_validate_json(message.content or "")
    with sdk.chat.completions.stream(
        model=REASONING,
        messages=ask("A forecast, please."),
        response_format=Forecast,
        max_completion_tokens=400,
    ) as stream:
        done = [event for event in stream if event.type == "content.done"]
    assert len(done) == 1
    assert isinstance(done[0].parsed, Forecast)


def test_a_whole_completion_carries_calls_reasoning_refusal_and_usage(sdk: OpenAI) -> None:
    called = sdk.chat.completions.create(
        model=REASONING,
        messages=ask("What is the weather?"),
        tools=[WEATHER],
        tool_choice="required",
        reasoning_effort="minimal",
    )
    message = called.choices[0].message
    assert message.content is None
    calls = [call for call in message.tool_calls or [] if call.type == "function"]
    assert [call.function.name for call in calls] == ["get_weather"]
    assert (message.model_extra or {})["reasoning_content"].endswith("call get_weather.")
    assert called.usage is not None
    assert called.usage.completion_tokens_details is not None
    assert called.usage.completion_tokens_details.reasoning_tokens

    refused = sdk.chat.completions.create(
        model="ssechat-simulated", messages=ask("Please refuse to answer.")
    )
    assert refused.choices[0].message.refusal == "I'm sorry, but I can't help with that."
    assert refused.choices[0].message.content is None


def test_the_sdk_message_goes_back_with_the_tool_results(sdk: OpenAI) -> None:
    messages = ask("Use get_weather for Oslo.")
    first = sdk.chat.completions.create(
        model=REASONING, messages=messages, tools=[WEATHER], reasoning_effort="low"
    )
    assistant = first.choices[0].message
    messages.append(assistant)  # type: ignore[arg-type]  # the SDK accepts its own object
    for call in assistant.tool_calls or []:
        messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"c": 3}'})
    second = sdk.chat.completions.create(
        model=REASONING, messages=messages, tools=[WEATHER], reasoning_effort="low"
    )
    answer = second.choices[0]
    assert answer.message.content
    assert not answer.message.tool_calls
    reasoning = (answer.message.model_extra or {})["reasoning_content"]
    assert reasoning.startswith("The tool returned")

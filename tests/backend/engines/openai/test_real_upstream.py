"""The ``openai`` engine in front of a real OpenAI-compatible server not written here:
llama-cpp-python's own server on the local GGUF, with a function-calling chat
format (tests/llama_server.py, started once per session).

What the engine relays must equal what the server answers when asked
directly, with the official ``openai`` SDK, streamed and not: the same text,
the same tool call (name and arguments). Greedy sampling and a fixed seed
make the server's answers repeatable.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionNamedToolChoiceParam,
    ChatCompletionToolParam,
)

from backend.engines.base import ChatMessage, GenerationRequest, TokenDelta, ToolSpec
from backend.engines.openai import OpenAIUpstreamEngine
from tests.llama_server import MODEL_ALIAS

pytestmark = [pytest.mark.llama, pytest.mark.timeout(120)]

QUESTION = "What is the capital of France?"
WEATHER_QUESTION = "What is the weather in Paris?"
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather.",
        "parameters": PARAMETERS,
    },
}
FORCED: ChatCompletionNamedToolChoiceParam = {
    "type": "function",
    "function": {"name": "get_weather"},
}
SAMPLING: dict[str, Any] = {"temperature": 0.0, "seed": 1, "max_tokens": 40}


@pytest.fixture
async def sdk(llama_upstream: str) -> AsyncIterator[AsyncOpenAI]:
    async with AsyncOpenAI(base_url=llama_upstream, api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture
async def engine(llama_upstream: str) -> AsyncIterator[OpenAIUpstreamEngine]:
    async with httpx.AsyncClient() as http:
        engine = OpenAIUpstreamEngine(http, base_url=llama_upstream, read_timeout_s=60.0)
        assert await engine.refresh_models() == (MODEL_ALIAS,)
        yield engine


def ours(question: str, **fields: Any) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage("user", question),),
        model=MODEL_ALIAS,
        max_tokens=SAMPLING["max_tokens"],
        temperature=SAMPLING["temperature"],
        seed=SAMPLING["seed"],
        **fields,
    )


def direct_messages(question: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": question}]


def calls_of(deltas: list[TokenDelta]) -> list[tuple[str, dict[str, Any]]]:
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    for delta in deltas:
        for fragment in delta.tool_calls:
            if fragment.name is not None:
                names[fragment.index] = fragment.name
            arguments[fragment.index] = arguments.get(fragment.index, "") + fragment.arguments
    return [(names[i], json.loads(arguments[i])) for i in sorted(arguments)]


async def test_text_equals_asking_the_server_directly(
    engine: OpenAIUpstreamEngine, sdk: AsyncOpenAI
) -> None:
    deltas = [delta async for delta in engine.stream(ours(QUESTION))]
    relayed = "".join(delta.text for delta in deltas)

    whole = await sdk.chat.completions.create(
        model=MODEL_ALIAS, messages=direct_messages(QUESTION), **SAMPLING
    )
    stream = await sdk.chat.completions.create(
        model=MODEL_ALIAS, messages=direct_messages(QUESTION), stream=True, **SAMPLING
    )
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    assert relayed  # equal to nothing would prove nothing
    assert relayed == whole.choices[0].message.content == streamed
    assert deltas[-1].finish_reason == whole.choices[0].finish_reason


async def test_a_forced_tool_call_equals_asking_the_server_directly(
    engine: OpenAIUpstreamEngine, sdk: AsyncOpenAI
) -> None:
    tool = ToolSpec("get_weather", "Get the weather.", PARAMETERS)
    request = ours(WEATHER_QUESTION, tools=(tool,), tool_choice="get_weather")
    engine.check(request)
    deltas = [delta async for delta in engine.stream(request)]

    whole = await sdk.chat.completions.create(
        model=MODEL_ALIAS,
        messages=direct_messages(WEATHER_QUESTION),
        tools=[TOOL],
        tool_choice=FORCED,
        **SAMPLING,
    )
    [call] = whole.choices[0].message.tool_calls or []
    assert call.type == "function"
    direct = [(call.function.name, json.loads(call.function.arguments))]
    stream = await sdk.chat.completions.create(
        model=MODEL_ALIAS,
        messages=direct_messages(WEATHER_QUESTION),
        tools=[TOOL],
        tool_choice=FORCED,
        stream=True,
        **SAMPLING,
    )
    arguments = ""
    async for chunk in stream:
        for piece in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            arguments += piece.function.arguments or "" if piece.function else ""

    assert calls_of(deltas) == direct == [("get_weather", json.loads(arguments))]
    assert deltas[-1].finish_reason == "tool_calls" == whole.choices[0].finish_reason
    assert "".join(delta.text for delta in deltas) == ""
    # The server repeats id and name in every fragment; ours come once.
    assert len([f for d in deltas for f in d.tool_calls if f.name]) == 1

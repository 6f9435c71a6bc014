"""ssechat in front of a real OpenAI-compatible server, end to end (issue 9).

``python -m backend --engine openai --upstream-url …`` relays llama-cpp-python's
own server (tests/llama_server.py: the local GGUF, a function-calling chat
format). Asked through ssechat's API with the official ``openai`` SDK, the
answer must equal asking that server directly: the same text, the same tool
call (name and arguments), streamed and not. Greedy sampling and a fixed seed
make the server's answers repeatable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI
from openai.types.chat import (
    ChatCompletionMessageParam,
    ChatCompletionNamedToolChoiceParam,
    ChatCompletionToolParam,
)

from tests.llama_server import MODEL_ALIAS
from tests.servers import run_backend_process

pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]

SAMPLING: dict[str, Any] = {"temperature": 0.0, "seed": 1, "max_tokens": 40}
TEXT: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]
WEATHER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the weather in Paris?"}
]
TOOL: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
FORCED: ChatCompletionNamedToolChoiceParam = {
    "type": "function",
    "function": {"name": "get_weather"},
}

Call = tuple[str, dict[str, Any]]


@pytest.fixture(scope="module")
def ssechat(llama_upstream: str) -> Iterator[OpenAI]:
    env = {"SSECHAT_UPSTREAM_READ_TIMEOUT_S": "120", "SSECHAT_LOG_LEVEL": "warning"}
    args = ["--engine", "openai", "--upstream-url", llama_upstream]
    with run_backend_process(env, args) as base_url:
        client = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=120)
        yield client
        client.close()


@pytest.fixture(scope="module")
def direct(llama_upstream: str) -> Iterator[OpenAI]:
    client = OpenAI(base_url=llama_upstream, api_key="unused", max_retries=0, timeout=120)
    yield client
    client.close()


def answer(client: OpenAI, messages: list[ChatCompletionMessageParam]) -> tuple[str, str]:
    """(text, finish_reason), not streamed."""
    whole = client.chat.completions.create(model=MODEL_ALIAS, messages=messages, **SAMPLING)
    choice = whole.choices[0]
    return choice.message.content or "", choice.finish_reason


def streamed(client: OpenAI, messages: list[ChatCompletionMessageParam]) -> tuple[str, str]:
    """(text, finish_reason), streamed."""
    text, finish = "", ""
    stream = client.chat.completions.create(
        model=MODEL_ALIAS, messages=messages, stream=True, **SAMPLING
    )
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    return text, finish


def call(client: OpenAI) -> tuple[list[Call], str]:
    """The forced tool call and finish_reason, not streamed."""
    whole = client.chat.completions.create(
        model=MODEL_ALIAS, messages=WEATHER, tools=[TOOL], tool_choice=FORCED, **SAMPLING
    )
    choice = whole.choices[0]
    calls = [
        (tool_call.function.name, json.loads(tool_call.function.arguments))
        for tool_call in choice.message.tool_calls or []
        if tool_call.type == "function"
    ]
    return calls, choice.finish_reason


def streamed_call(client: OpenAI) -> tuple[list[Call], str]:
    """The forced tool call and finish_reason, streamed (fragments assembled by index;
    the first name given for an index wins: llama-cpp-python repeats it)."""
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    finish = ""
    stream = client.chat.completions.create(
        model=MODEL_ALIAS,
        messages=WEATHER,
        tools=[TOOL],
        tool_choice=FORCED,
        stream=True,
        **SAMPLING,
    )
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for piece in choice.delta.tool_calls or []:
                if piece.function is None:
                    continue
                if piece.function.name:
                    names.setdefault(piece.index, piece.function.name)
                arguments[piece.index] = arguments.get(piece.index, "") + (
                    piece.function.arguments or ""
                )
    calls = [(names.get(i, ""), json.loads(arguments[i])) for i in sorted(arguments)]
    return calls, finish


def test_ssechat_serves_the_upstreams_model(ssechat: OpenAI) -> None:
    assert MODEL_ALIAS in [model.id for model in ssechat.models.list().data]


def test_text_equals_asking_the_server_directly(ssechat: OpenAI, direct: OpenAI) -> None:
    expected = answer(direct, TEXT)
    assert expected[0]  # equal to nothing would prove nothing
    assert streamed(direct, TEXT) == expected
    assert answer(ssechat, TEXT) == expected
    assert streamed(ssechat, TEXT) == expected


def test_tool_call_equals_asking_the_server_directly(ssechat: OpenAI, direct: OpenAI) -> None:
    expected = call(direct)
    assert expected[0][0][0] == "get_weather"
    assert expected[1] == "tool_calls"
    assert streamed_call(direct) == expected
    assert call(ssechat) == expected
    assert streamed_call(ssechat) == expected

"""The official ``openai`` SDK against a live ``python -m backend`` process."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.servers import run_backend_process
from tests.whatwg_sse import parse_stream

MESSAGES: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Explain SSE in one paragraph."}
]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    env = {"SSECHAT_ENGINE": "simulated", "SSECHAT_SIM_TOKENS_PER_S": "0"}
    with run_backend_process(env) as url:
        yield url


def test_sdk_stream_equals_raw_parse_equals_non_stream(base_url: str) -> None:
    sdk = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
    model = sdk.models.list().data[0].id
    stream = sdk.chat.completions.create(
        model=model,
        messages=MESSAGES,
        stream=True,
        seed=42,
        max_tokens=80,
        stream_options={"include_usage": True},
    )
    sdk_text = ""
    usage = None
    finish_reasons = []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            sdk_text += choice.delta.content or ""
            if choice.finish_reason:
                finish_reasons.append(choice.finish_reason)
    assert finish_reasons in (["stop"], ["length"])
    assert usage is not None
    assert usage.completion_tokens > 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    body = {"model": model, "messages": MESSAGES, "seed": 42, "max_tokens": 80, "stream": True}
    with httpx.Client(timeout=30) as http:
        raw = http.post(f"{base_url}/v1/chat/completions", json=body).content
    events, _ = parse_stream(raw)
    raw_text = "".join(
        json.loads(event.data)["choices"][0]["delta"].get("content") or ""
        for event in events[:-1]
        if json.loads(event.data)["choices"]
    )

    whole = sdk.chat.completions.create(
        model=model,
        messages=MESSAGES,
        seed=42,
        max_tokens=80,
    )
    assert sdk_text == raw_text == whole.choices[0].message.content
    assert whole.usage is not None
    assert whole.usage.completion_tokens == usage.completion_tokens


def test_sdk_raises_readable_errors(base_url: str) -> None:
    import openai

    sdk = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        sdk.chat.completions.create(model="nope", messages=MESSAGES)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        sdk.chat.completions.create(
            model="ssechat-simulated",
            messages=MESSAGES,
            temperature=9,
        )

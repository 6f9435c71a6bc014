"""The local model answers through the API (real GGUF, real process, real SDK)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openai import OpenAI
from openai.types.chat import ChatCompletionMessageParam

from tests.servers import run_backend_process

pytest.importorskip("llama_cpp", reason="the `local` extra is not installed")
pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with run_backend_process({"SSECHAT_ENGINE": "auto"}, startup_timeout_s=120) as url:
        yield url


def test_auto_engine_picks_the_local_model(base_url: str) -> None:
    sdk = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
    ids = [model.id for model in sdk.models.list().data]
    assert ids[0] == "gemma-3-270m"
    assert "ssechat-simulated" in ids


def test_local_model_streams_through_the_sdk(base_url: str) -> None:
    sdk = OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "What is the capital of France?"}
    ]
    stream = sdk.chat.completions.create(
        model="gemma-3-270m",
        messages=messages,
        stream=True,
        max_tokens=24,
        seed=1,
        temperature=0.2,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        pieces.extend(choice.delta.content or "" for choice in chunk.choices)
    text = "".join(pieces)
    assert text.strip()
    assert len([piece for piece in pieces if piece]) >= 2  # it streamed, not one blob
    assert usage is not None
    assert 1 <= usage.completion_tokens <= 24
    assert usage.prompt_tokens > 10
    # same seed, same text, without streaming
    whole = sdk.chat.completions.create(
        model="gemma-3-270m",
        messages=messages,
        max_tokens=24,
        seed=1,
        temperature=0.2,
    )
    assert whole.choices[0].message.content == text

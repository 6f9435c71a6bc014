"""The ``openai`` engine serves the Responses API (with ``SSECHAT_UPSTREAM_RESPONSES=off``)
and Anthropic Messages from its upstream's Chat Completions stream: a gateway in front
of a second ssechat."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from anthropic import Anthropic
from openai import OpenAI

from backend.app import create_app
from backend.config import Settings
from tests.backend.dialects.helpers import QUESTION, SIMULATED, SYSTEM, chat_text
from tests.servers import serve_app


@pytest.fixture(scope="module")
def urls() -> Iterator[tuple[str, str]]:
    upstream = create_app(Settings(engine="simulated", sim_tokens_per_s=0.0))
    with serve_app(upstream) as upstream_url:
        gateway = create_app(
            Settings(
                engine="openai",
                upstream_url=f"{upstream_url}/v1",
                model=SIMULATED,
                upstream_responses="off",
            )
        )
        with serve_app(gateway) as gateway_url:
            yield upstream_url, gateway_url


def test_both_dialects_relay_the_upstream_s_text(urls: tuple[str, str]) -> None:
    upstream_url, gateway_url = urls
    with httpx.Client(timeout=30) as http:
        reference = chat_text(http, upstream_url, model=SIMULATED, max_tokens=40)
    with OpenAI(base_url=f"{gateway_url}/v1", api_key="unused", max_retries=0) as openai_sdk:
        events = list(
            openai_sdk.responses.create(
                model=SIMULATED,
                instructions=SYSTEM,
                input=QUESTION,
                max_output_tokens=40,
                stream=True,
            )
        )
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == reference
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[-1].type == "response.incomplete"
    with (
        Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as anthropic_sdk,
        anthropic_sdk.messages.stream(
            model=SIMULATED,
            max_tokens=40,
            system=SYSTEM,
            messages=[{"role": "user", "content": QUESTION}],
        ) as stream,
    ):
        assert "".join(stream.text_stream) == reference
        assert stream.get_final_message().stop_reason == "max_tokens"


def test_an_upstream_s_stop_sequence_reaches_anthropic_clients(urls: tuple[str, str]) -> None:
    upstream_url, gateway_url = urls
    with httpx.Client(timeout=30) as http:
        reference = chat_text(http, upstream_url, model=SIMULATED, max_tokens=40)
    stop = " " + reference.split()[3]
    with Anthropic(base_url=gateway_url, api_key="unused", max_retries=0) as anthropic_sdk:
        message = anthropic_sdk.messages.create(
            model=SIMULATED,
            max_tokens=40,
            system=SYSTEM,
            messages=[{"role": "user", "content": QUESTION}],
            stop_sequences=[stop],
        )
    # The upstream names the stop in Chat Completions' stop_reason; the engine passes it on.
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", stop)
    assert message.content[0].type == "text"
    assert message.content[0].text == reference[: reference.index(stop)]

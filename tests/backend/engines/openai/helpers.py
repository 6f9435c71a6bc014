"""Shared by the ``openai`` engine tests: the scripted upstream's handle, the engine
as the tests build it, and the request they send."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

from backend.engines.base import ChatMessage, GenerationRequest
from backend.engines.openai import OpenAIUpstreamEngine
from tests.backend.engines.upstream_faults import FaultyUpstream, RecordedRequest

# Short, so the stall and trickle cases are fast.
READ_TIMEOUT_S = 0.5
REQUEST = GenerationRequest(
    messages=(ChatMessage("system", "Be brief."), ChatMessage("user", "Say hello, please.")),
    model="upstream-model",
    max_tokens=32,
    temperature=0.5,
    top_p=0.9,
    seed=7,
    stop=("\n\nUser:",),
)


@dataclass
class Upstream:
    """The running ``FaultyUpstream``: a scenario is the first path segment."""

    app: FaultyUpstream
    base_url: str

    def url(self, scenario: str) -> str:
        return f"{self.base_url}/{scenario}/v1"

    def last(self) -> RecordedRequest:
        return self.app.last()


def make_engine(client: httpx.AsyncClient, url: str, **options: Any) -> OpenAIUpstreamEngine:
    arguments: dict[str, Any] = {
        "base_url": url,
        "api_key": None,
        "include_usage": True,
        "connect_timeout_s": 2.0,
        "read_timeout_s": READ_TIMEOUT_S,
        "model": "upstream-model",
    }
    arguments.update(options)
    return OpenAIUpstreamEngine(client, **arguments)


async def wait_disconnected(record: RecordedRequest, timeout_s: float = 5.0) -> bool:
    return await asyncio.to_thread(record.disconnected.wait, timeout_s)

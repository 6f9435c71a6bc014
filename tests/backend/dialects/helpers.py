"""What the dialect tests share: a server with every engine they drive, and raw reads."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from backend.app import create_app
from backend.config import Settings
from backend.engines.base import Engine
from backend.engines.simulated import SimulatedEngine
from tests.backend.fault_engines import FailingEngine
from tests.backend.scripted_engine import ScriptedEngine, scripted_engines
from tests.servers import serve_app
from tests.whatwg_sse import ParsedEvent, parse_stream

SIMULATED = "ssechat-simulated"
# 20 tokens/s and every answer runs to max tokens: a stream that is still live
# when a test cancels or resumes it.
SLOW = "ssechat-slow"
SYSTEM = "Be brief."
QUESTION = "How do Server-Sent Events resume?"


@contextlib.contextmanager
def dialect_server(
    extra: Sequence[Engine] = (), **settings: Any
) -> Iterator[tuple[str, list[Engine]]]:
    """A real server: the simulated engine as fast as it goes, scripted engines
    (every delta kind), a slow simulated one, and engines that fail mid-stream."""
    engines: list[Engine] = [
        *extra,
        *scripted_engines(),
        SimulatedEngine(tokens_per_s=20, model=SLOW, fill_max_tokens=True),
        FailingEngine("failing", tokens_before_failure=3, crash=False),
        FailingEngine("crashing", tokens_before_failure=2, crash=True),
    ]
    values: dict[str, Any] = {"engine": "simulated", "sim_tokens_per_s": 0.0, **settings}
    app = create_app(Settings(**values), extra_engines=engines)
    with serve_app(app) as url:
        yield url, engines


def scripted(engines: list[Engine], model: str) -> ScriptedEngine:
    for engine in engines:
        if isinstance(engine, ScriptedEngine) and engine.models == (model,):
            return engine
    raise LookupError(model)


def read_sse(
    client: httpx.Client, method: str, url: str, **kwargs: Any
) -> tuple[httpx.Response, list[ParsedEvent], bytes]:
    """One whole SSE response: its head, its events (parsed by the reference
    parser, ids included) and its bytes."""
    with client.stream(method, url, **kwargs) as response:
        raw = response.read()
    events, _ = parse_stream(raw)
    return response, events, raw


def datas(events: list[ParsedEvent]) -> list[dict[str, Any]]:
    return [json.loads(event.data) for event in events]


def chat_text(client: httpx.Client, url: str, **body: Any) -> str:
    """The Chat Completions answer (not streamed) to the same question."""
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
    reply = client.post(f"{url}/v1/chat/completions", json={"messages": messages, **body})
    reply.raise_for_status()
    text: str = reply.json()["choices"][0]["message"]["content"]
    return text

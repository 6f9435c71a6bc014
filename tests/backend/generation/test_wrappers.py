"""The metering wrappers (backend/generation/wrappers.py): how a generation's end is
counted, for engine deltas and for a relayed upstream's Responses events alike."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable
from typing import Any

import pytest

from backend.engines.base import TokenDelta
from backend.generation.wrappers import metered_deltas, metered_upstream_events
from backend.metrics import Metrics

Wrapper = Callable[[AsyncGenerator[Any, None], Any], AsyncGenerator[Any, None]]


async def deltas(crash: bool) -> AsyncGenerator[TokenDelta, None]:
    yield TokenDelta("Hi")
    if crash:
        raise RuntimeError("a bug, not an engine error")
    yield TokenDelta(" there")


async def events(crash: bool) -> AsyncGenerator[dict[str, Any], None]:
    yield {"type": "response.output_text.delta", "delta": "Hi"}
    if crash:
        raise RuntimeError("a bug, not an engine error")
    yield {"type": "response.output_text.delta", "delta": " there"}


CASES = [(metered_deltas, deltas), (metered_upstream_events, events)]


def finishes(metrics: Metrics) -> dict[str, float]:
    return {key[2]: value for key, value in metrics.generations.snapshot()["series"]}


@pytest.mark.parametrize(("wrap", "source"), CASES)
async def test_a_crash_counts_as_an_error(wrap: Wrapper, source: Any) -> None:
    metrics = Metrics()
    wrapped = wrap(source(crash=True), metrics.meter("chat", "sim", time.perf_counter()))
    with pytest.raises(RuntimeError):
        async for _ in wrapped:
            pass
    assert finishes(metrics) == {"error": 1}
    assert metrics.generated_tokens.get(("chat", "sim")) == 1


@pytest.mark.parametrize(("wrap", "source"), CASES)
async def test_a_stop_before_the_end_counts_as_cancelled(wrap: Wrapper, source: Any) -> None:
    metrics = Metrics()
    wrapped = wrap(source(crash=False), metrics.meter("chat", "sim", time.perf_counter()))
    await anext(wrapped)
    await wrapped.aclose()
    assert finishes(metrics) == {"cancelled": 1}

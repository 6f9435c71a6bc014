"""What the metrics cost per token: the engine's deltas read plain, through a bare
pass-through async generator (the hop any wrapper adds), and through
``metered_deltas`` (the hop plus the counting: clock, token, gap histogram).

Run: ``python -m bench.metrics_overhead``. Prints nanoseconds per delta (the
minimum of five rounds of 200,000 deltas each).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncGenerator, Callable

from backend.engines.base import TokenDelta
from backend.generation.wrappers import metered_deltas
from backend.metrics import Metrics

_DELTAS = 200_000
_ROUNDS = 5

Wrap = Callable[[AsyncGenerator[TokenDelta, None]], AsyncGenerator[TokenDelta, None]]


async def _engine(deltas: list[TokenDelta]) -> AsyncGenerator[TokenDelta, None]:
    for delta in deltas:
        yield delta


async def _pass_through(
    deltas: AsyncGenerator[TokenDelta, None],
) -> AsyncGenerator[TokenDelta, None]:
    async for delta in deltas:
        yield delta


def _metered(deltas: AsyncGenerator[TokenDelta, None]) -> AsyncGenerator[TokenDelta, None]:
    meter = Metrics().meter("chat_completions", "simulated", time.perf_counter())
    return metered_deltas(deltas, meter)


async def _ns_per_delta(wrap: Wrap | None) -> float:
    deltas = [TokenDelta(" token") for _ in range(_DELTAS)]
    best = float("inf")
    for _ in range(_ROUNDS):
        stream = _engine(deltas)
        if wrap is not None:
            stream = wrap(stream)
        started = time.perf_counter()
        async for _delta in stream:
            pass
        best = min(best, time.perf_counter() - started)
    return best / _DELTAS * 1e9


async def _main() -> None:
    plain = await _ns_per_delta(None)
    hop = await _ns_per_delta(_pass_through)
    metered = await _ns_per_delta(_metered)
    sys.stdout.write(
        f"plain:        {plain:.0f} ns/delta\n"
        f"pass-through: {hop:.0f} ns/delta (+{hop - plain:.0f})\n"
        f"metered:      {metered:.0f} ns/delta (+{metered - plain:.0f}: "
        f"{hop - plain:.0f} the hop, {metered - hop:.0f} the counting)\n"
    )


if __name__ == "__main__":
    asyncio.run(_main())

"""What wraps a generation without knowing its dialect.

- ``SlotGeneration`` holds a concurrency slot for as long as the generation
  it wraps runs (the slot follows the generation, not the HTTP response).
- ``metered_deltas`` counts what the engine produced for the metrics (tokens,
  first token, gaps between tokens, errors, how it ended) and
  ``logged_deltas`` logs it (``SSECHAT_LOG_CONTENT=1`` only); both read the
  engine's deltas, so neither needs a parser per dialect.
- ``metered_upstream_events`` does the metering for a relayed response, whose
  engine output is an upstream's Responses events rather than deltas.
"""

from __future__ import annotations

import logging
import weakref
from bisect import bisect_left
from collections.abc import AsyncGenerator, Sequence
from time import perf_counter
from typing import Any

from backend.engines.base import EngineError, TokenDelta
from backend.hub.base import EndReason, Event, Generation, Produced, Template
from backend.limits.base import StreamSlot
from backend.metrics import StreamMeter

logger = logging.getLogger(__name__)


async def close_iterator(iterator: AsyncGenerator[Any, None]) -> None:
    """Close an async generator we stopped iterating early (``async for`` does not),
    so what it holds (an upstream connection) is released now, not at garbage collection."""
    await iterator.aclose()


class SlotGeneration:
    """Holds a concurrency slot for exactly as long as the wrapped generation runs.

    Released when the events end for any reason (finished, engine error,
    cancelled by a request, abandoned, shutdown: cancellation reaches the
    generator's ``finally``), or when the hub drops the generation unstarted
    (a task cancelled before it ever ran: the finalizer). ``closing_events``
    is *not* a release point: a hub may call it up front (the redis hub
    stores the payloads that end an orphaned stream).
    """

    def __init__(self, inner: Generation, slot: StreamSlot) -> None:
        self._inner = inner
        self._slot = slot
        weakref.finalize(self, slot.release)

    @property
    def templates(self) -> Sequence[Template]:
        return self._inner.templates

    async def events(self) -> AsyncGenerator[Produced, None]:
        events = self._inner.events()
        try:
            async for event in events:
                yield event
        finally:
            self._slot.release()
            await close_iterator(events)

    def closing_events(self, reason: EndReason, message: str) -> Sequence[Event]:
        return self._inner.closing_events(reason, message)


async def metered_deltas(
    deltas: AsyncGenerator[TokenDelta, None], meter: StreamMeter
) -> AsyncGenerator[TokenDelta, None]:
    """Pass deltas through, counting them into ``meter``.

    Per output delta: one clock read and a few additions in memory (the
    token, and the gap since the previous one, straight into the histogram's
    series; a scrape sees them at once).
    Once per generation: the first token, and how it ended: its finish
    reason (counted as the final delta passes, since a renderer stops
    iterating there), ``error`` for an engine error or an engine that
    stopped without a finish reason, ``cancelled`` when it was stopped
    (cancel, disconnect, shutdown).
    """
    tokens = meter.tokens
    # The histogram series' own fields, inlined: a method call per token costs more.
    gaps = meter.gaps
    bounds = gaps.bounds
    counts = gaps.counts
    last = 0.0
    try:
        async for delta in deltas:
            if delta.text or delta.reasoning or delta.tool_calls or delta.refusal:
                now = perf_counter()
                if last:
                    gap = now - last
                    counts[bisect_left(bounds, gap)] += 1
                    gaps.total += gap
                else:
                    meter.first_token(now)
                last = now
                tokens.value += 1
            if delta.finish_reason is not None and not meter.ended:
                meter.end(delta.finish_reason)
                # The engine has nothing after its final delta: finish it now (its
                # upstream connection, its thread's job), since a renderer stops
                # iterating here and may leave this generator to the collector.
                await close_iterator(deltas)
            yield delta
        if not meter.ended:
            meter.error("engine_error", "no_finish_reason")
            meter.end("error")
    except BaseException as error:
        _count_end(meter, error)
        raise
    finally:
        meter.end("cancelled")  # stopped (cancel, disconnect, shutdown), if nothing else ended it
        await close_iterator(deltas)


def _count_end(meter: StreamMeter, error: BaseException) -> None:
    """How a generation that raised ended, unless it had ended already: an engine's
    error or a bug is an ``error``; a cancellation or a closed generator, ``cancelled``."""
    if meter.ended:
        return
    if isinstance(error, EngineError):
        meter.error(error.error_type, error.code)
    if isinstance(error, Exception):
        meter.end("error")
    else:
        meter.end("cancelled")


# How a relayed response ended, in finish-reason terms (for the metrics).
_INCOMPLETE_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _relayed_finish(event: dict[str, Any]) -> str:
    response = event.get("response")
    response = response if isinstance(response, dict) else {}
    if event["type"] == "response.failed":
        return "error"
    if event["type"] == "response.incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE_FINISH.get(str(reason), "length")
    output = response.get("output")
    calls = isinstance(output, list) and any(
        isinstance(item, dict) and item.get("type") == "function_call" for item in output
    )
    return "tool_calls" if calls else "stop"


async def metered_upstream_events(
    events: AsyncGenerator[dict[str, Any], None], meter: StreamMeter
) -> AsyncGenerator[dict[str, Any], None]:
    """``metered_deltas`` for an upstream's Responses events: each ``*.delta`` event
    is a token; the terminal event says how it ended (``response.failed``: an error)."""
    last = 0.0
    try:
        async for event in events:
            kind = event["type"]
            if kind.endswith(".delta"):
                now = perf_counter()
                if last:
                    meter.gaps.observe(now - last)
                else:
                    meter.first_token(now)
                last = now
                meter.tokens.value += 1
            elif kind in ("response.completed", "response.incomplete", "response.failed"):
                finish = _relayed_finish(event)
                if finish == "error" and not meter.ended:
                    meter.error("upstream_error", "upstream_response_failed")
                meter.end(finish)
            yield event
    except BaseException as error:
        _count_end(meter, error)
        raise
    finally:
        meter.end("cancelled")  # stopped (cancel, disconnect, shutdown), if nothing else ended it
        await close_iterator(events)


async def logged_deltas(
    deltas: AsyncGenerator[TokenDelta, None], stream_id: str
) -> AsyncGenerator[TokenDelta, None]:
    """Pass deltas through; log the answer (text, reasoning, tool calls) when it ends."""
    text: list[str] = []
    reasoning: list[str] = []
    calls: dict[int, list[str]] = {}
    logged = False

    def log(ended: str) -> None:
        nonlocal logged
        logged = True
        logger.info(
            "%s answer (%s): %r reasoning=%r tool_calls=%r",
            stream_id,
            ended,
            "".join(text),
            "".join(reasoning),
            ["".join(parts) for _, parts in sorted(calls.items())],
        )

    try:
        async for delta in deltas:
            text.append(delta.text)
            reasoning.append(delta.reasoning)
            for call in delta.tool_calls:
                parts = calls.setdefault(call.index, [])
                if call.name:
                    parts.append(call.name + " ")
                parts.append(call.arguments)
            if delta.finish_reason is not None:
                # Now, not in ``finally``: a consumer that stops at the final delta
                # may leave this generator to the garbage collector.
                log(delta.finish_reason)
            yield delta
    finally:
        await close_iterator(deltas)
        if not logged:
            log("cancelled")

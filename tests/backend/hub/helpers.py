"""Shared pieces of the hub tests: real generations, readers, an end-reason recorder."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from backend.engines.base import ChatMessage, GenerationRequest
from backend.engines.simulated import SimulatedEngine
from backend.generation.chat import ChatCompletionGeneration, complete
from backend.hub.base import EndReason, StreamEvent, StreamHub, Subscription
from backend.sse import DONE

PROMPT = "Explain Server-Sent Events."


def generation_request(*, seed: int = 7, max_tokens: int = 64) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage("user", PROMPT),),
        model="ssechat-simulated",
        max_tokens=max_tokens,
        seed=seed,
    )


def generation(
    stream_id: str,
    *,
    tokens_per_s: float = 0.0,
    seed: int = 7,
    max_tokens: int = 64,
    request: GenerationRequest | None = None,
) -> ChatCompletionGeneration:
    """The real producer the routes use, over the deterministic simulated engine
    (``request``: another request than the plain default one)."""
    request = request or generation_request(seed=seed, max_tokens=max_tokens)
    return ChatCompletionGeneration(
        deltas=SimulatedEngine(tokens_per_s=tokens_per_s).stream(request),
        model=request.model,
        completion_id=stream_id,
        include_usage=False,
    )


async def reference_text(*, seed: int = 7, max_tokens: int = 64) -> str:
    """The whole answer, from the non-streaming path (no hub involved)."""
    request = generation_request(seed=seed, max_tokens=max_tokens)
    result = await complete(SimulatedEngine(tokens_per_s=0.0).stream(request), request.model, "x")
    text: str = result["choices"][0]["message"]["content"]
    return text


def text_of(events: Sequence[StreamEvent]) -> str:
    parts = []
    for event in events:
        if event.data == DONE:
            continue
        chunk = json.loads(event.data)
        for choice in chunk.get("choices", ()):
            parts.append(choice["delta"].get("content") or "")
    return "".join(parts)


def finish_reason(events: Sequence[StreamEvent]) -> str | None:
    for event in reversed(events):
        if event.data == DONE:
            continue
        choices = json.loads(event.data).get("choices") or [{}]
        reason = choices[0].get("finish_reason")
        if reason is not None:
            return str(reason)
    return None


async def collect(subscription: Subscription, *, limit: int | None = None) -> list[StreamEvent]:
    """Events until the stream ends (or ``limit`` events, then detach)."""
    events: list[StreamEvent] = []
    try:
        async for batch in subscription:
            events.extend(batch)
            if limit is not None and len(events) >= limit:
                break
    finally:
        await subscription.aclose()
    return events


async def read_all(hub: StreamHub, stream_id: str, after: int = 0) -> list[StreamEvent]:
    return await collect(await hub.subscribe(stream_id, after, None))


class Reader:
    """One subscription read in steps through a single iterator.

    (Leaving an ``async for`` drops its iterator, and finalizing a
    subscription's iterator detaches the subscription, so reading in steps
    must keep one iterator.)
    """

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self._batches: AsyncIterator[Sequence[StreamEvent]] = aiter(subscription)

    async def take(self, count: int) -> list[StreamEvent]:
        """At least ``count`` more events (keep-alives skipped)."""
        events: list[StreamEvent] = []
        while len(events) < count:
            try:
                events.extend(await anext(self._batches))
            except StopAsyncIteration:
                raise AssertionError(f"stream ended after {len(events)} more events") from None
        return events

    async def rest(self) -> list[StreamEvent]:
        """Every event until the end, then detach."""
        events: list[StreamEvent] = []
        try:
            async for batch in self._batches:
                events.extend(batch)
        finally:
            await self.subscription.aclose()
        return events

    async def aclose(self) -> None:
        await self.subscription.aclose()


def assert_contiguous(events: Sequence[StreamEvent], first: int = 1) -> None:
    assert [event.seq for event in events] == list(range(first, first + len(events)))


@dataclass
class EndRecorder:
    """The hub's ``on_end`` callback: records reasons, lets a test wait for one."""

    reasons: list[EndReason] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, reason: EndReason) -> None:
        self.reasons.append(reason)
        self._changed.set()

    async def wait_for(self, reason: EndReason, timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while reason not in self.reasons:
                self._changed.clear()
                await self._changed.wait()

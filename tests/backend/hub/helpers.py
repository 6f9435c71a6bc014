"""Shared pieces of the hub tests: real generations, readers, an end-reason recorder."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from backend.engines.base import ChatMessage, GenerationRequest
from backend.engines.simulated import SimulatedEngine
from backend.generation.chat import ChatCompletionGeneration, complete
from backend.hub.base import (
    EndReason,
    Event,
    Generation,
    Produced,
    StreamEvent,
    StreamHub,
    Subscription,
    Template,
    expand,
)
from backend.sse import DONE, encode_batch

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


class ScriptedGeneration:
    """A generation that yields a fixed script of items, one every ``delay_s``, and
    adds templates as it goes (``new_templates[i]`` is added just before item i)."""

    def __init__(
        self,
        items: Sequence[Produced],
        *,
        templates: Sequence[Template] = (),
        new_templates: dict[int, Template] | None = None,
        delay_s: float = 0.0,
    ) -> None:
        self.items = list(items)
        self._templates = list(templates)
        self._new_templates = new_templates or {}
        self._all_templates = [
            *templates,
            *(self._new_templates[index] for index in sorted(self._new_templates)),
        ]
        self._delay_s = delay_s

    @property
    def templates(self) -> Sequence[Template]:
        return self._templates

    async def events(self) -> AsyncGenerator[Produced, None]:
        for index, item in enumerate(self.items):
            if index in self._new_templates:
                self._templates.append(self._new_templates[index])
            await asyncio.sleep(self._delay_s)
            yield item

    def expected(self) -> list[Event]:
        """The whole events, expanded here rather than by the hub."""
        return [expand(self._all_templates, item) for item in self.items]

    def closing_events(self, reason: EndReason, message: str) -> Sequence[Event]:
        return [("error", f'{{"reason":"{reason}"}}')]


class Gated:
    """A generation that produces nothing until ``gate`` is set (streams that start together)."""

    def __init__(self, inner: Generation, gate: asyncio.Event) -> None:
        self._inner = inner
        self._gate = gate

    @property
    def templates(self) -> Sequence[Template]:
        return self._inner.templates

    async def events(self) -> AsyncGenerator[Produced, None]:
        await self._gate.wait()
        async for item in self._inner.events():
            yield item

    def closing_events(self, reason: EndReason, message: str) -> Sequence[Event]:
        return self._inner.closing_events(reason, message)


def wire_bytes(events: Sequence[tuple[int, str, str]]) -> bytes:
    """What a client receives for these events (the SSE encoder's bytes)."""
    return encode_batch(events)


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


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]], timeout_s: float = 10.0
) -> None:
    """Wait until ``condition()`` holds (polled: for state with no event to wait on,
    such as what a Redis hub's writer has landed so far)."""
    async with asyncio.timeout(timeout_s):
        while True:
            holds = condition()
            if holds if isinstance(holds, bool) else await holds:
                return
            await asyncio.sleep(0.02)


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

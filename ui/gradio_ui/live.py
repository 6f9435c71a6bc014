"""One answer while it arrives, and what the Stop buttons reach.

``LiveAnswer`` accumulates a stream's deltas into what the UI draws (text,
reasoning, tool calls, counts) and, once it ends, holds the client's final
``Answer`` (or the error). ``updates`` and ``whole`` produce it from a
streamed or a non-streamed request; both honour a ``Run``'s stop.

Stop is not Gradio's task cancellation: the Stop event calls
``ChatStream.cancel()`` (the server is told, the connection closed), the
stream then ends with the stopped ``Answer`` (``finish_reason`` ``cancelled``),
and the handler that was streaming draws it like any finished answer: the
message marked, metrics, timeline and Inspector describing what was stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from ui.client import (
    Answer,
    ChatClient,
    ChatClientError,
    ChatRequest,
    ChatStream,
    ConnectionLostError,
    Delta,
    StreamEventError,
)
from ui.client.builder import AnswerBuilder

__all__ = ["Handoff", "LiveAnswer", "Run", "Runs", "ToolBlock", "updates", "whole"]


@dataclass(slots=True)
class ToolBlock:
    index: int
    id: str | None
    name: str | None
    arguments: str
    done: bool = False


class LiveAnswer:
    """What has arrived of one answer; ``done`` once it finished, stopped or failed.

    ``tokens`` counts deltas that carried text, exactly as ``AnswerMetrics.tokens``
    does, so the count shown while streaming never jumps at the end.
    """

    def __init__(self, *, streamed: bool = True) -> None:
        self.streamed = streamed
        self.started = time.perf_counter()
        self.content = ""
        self.reasoning = ""
        self.refusal = ""
        self.reasoning_started = False
        self.reasoning_done_s: float | None = None  # first other delta after the reasoning
        self.reasoning_open = False
        self.tools: dict[int, ToolBlock] = {}
        self.tokens = 0
        self.first_token_s: float | None = None
        self.last_token_s: float | None = None
        self.answer: Answer | None = None
        self.error: ChatClientError | None = None

    @property
    def done(self) -> bool:
        return self.answer is not None or self.error is not None

    @property
    def stopped(self) -> bool:
        return self.answer is not None and self.answer.cancelled

    def elapsed_s(self) -> float:
        if self.answer is not None:
            return self.answer.metrics.duration_s
        return time.perf_counter() - self.started

    def reasoning_s(self) -> float | None:
        """How long the model thought: from the request to its first non-reasoning output
        (as chat apps say "thought for 3 s"), or until now / the end if it never stopped."""
        if not self.reasoning_started:
            return None
        if self.reasoning_done_s is not None:
            return self.reasoning_done_s
        return self.elapsed_s()

    def add(self, delta: Delta) -> None:
        if delta.text:
            self.tokens += 1
            if self.first_token_s is None:
                self.first_token_s = delta.t_s
            self.last_token_s = delta.t_s
        self.reasoning_open = delta.kind == "reasoning"
        for block in self.tools.values():
            block.done = not (delta.kind == "tool_call" and delta.index == block.index)
        if delta.kind != "reasoning" and self.reasoning_started and self.reasoning_done_s is None:
            self.reasoning_done_s = delta.t_s
        if delta.kind == "reasoning":
            self.reasoning += delta.text
            self.reasoning_started = True
        elif delta.kind == "tool_call":
            index = delta.index or 0
            current = self.tools.get(index)
            if current is None:
                self.tools[index] = ToolBlock(index, delta.tool_id, delta.name, delta.text)
            else:
                current.id = current.id or delta.tool_id
                current.name = current.name or delta.name
                current.arguments += delta.text
        elif delta.kind == "refusal":
            self.refusal += delta.text
        else:
            self.content += delta.text

    def finish(self, answer: Answer) -> None:
        """Take the client's final answer as the truth (same text, exact metrics)."""
        self.answer = answer
        self.content = answer.text
        self.reasoning = answer.reasoning
        self.refusal = answer.refusal
        self.reasoning_open = False
        self.reasoning_started = self.reasoning_started or bool(answer.reasoning)
        self.tools = {
            call.index: ToolBlock(call.index, call.id, call.name, call.arguments, done=True)
            for call in answer.tool_calls
        }
        self.tokens = answer.metrics.tokens

    def fail(self, error: ChatClientError) -> None:
        partial = (
            error.answer if isinstance(error, StreamEventError | ConnectionLostError) else None
        )
        if partial is not None:
            self.finish(partial)
        self.error = error
        self.reasoning_open = False
        for block in self.tools.values():
            block.done = True


T = TypeVar("T")


class Handoff(Generic[T]):
    """What a streaming event leaves for the event chained after it, by browser session.

    The streaming event's outputs are only what changes per update (a Gradio
    output left unchanged with ``gr.skip()`` still costs the server a
    component rebuild per update), so the finished answer reaches the event
    that writes the conversation through here. Bounded: a session that never
    collects (the tab was closed) is forgotten after ``limit`` others.
    """

    def __init__(self, limit: int = 1000) -> None:
        self._items: OrderedDict[str, T] = OrderedDict()
        self._limit = limit

    def put(self, session: str | None, item: T) -> None:
        if session is None:
            return
        self._items[session] = item
        self._items.move_to_end(session)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)

    def take(self, session: str | None) -> T | None:
        return None if session is None else self._items.pop(session, None)


class Run:
    """One Chat answer or Compare run of one browser session: its streams, and Stop."""

    def __init__(self) -> None:
        self.stopped = asyncio.Event()
        self._streams: list[ChatStream] = []

    async def watch(self, stream: ChatStream) -> None:
        self._streams.append(stream)
        if self.stopped.is_set():
            await stream.cancel()

    async def stop(self) -> None:
        self.stopped.set()
        await asyncio.gather(*(stream.cancel() for stream in self._streams))


class Runs:
    """The runs in progress, by (browser session, tab): what a Stop click finds."""

    def __init__(self) -> None:
        self._runs: dict[tuple[str, str], Run] = {}

    @contextlib.contextmanager
    def start(self, session: str | None, tab: str) -> Iterator[Run]:
        run = Run()
        key = (session or f"anonymous-{id(run)}", tab)
        self._runs[key] = run
        try:
            yield run
        finally:
            if self._runs.get(key) is run:
                del self._runs[key]

    def active(self, session: str | None, tab: str) -> bool:
        return session is not None and (session, tab) in self._runs

    async def stop(self, session: str | None, tab: str) -> bool:
        """Stop the session's run in that tab; False if none is running."""
        run = self._runs.get((session or "", tab))
        if run is None:
            return False
        await run.stop()
        return True


async def updates(client: ChatClient, request: ChatRequest, run: Run) -> AsyncIterator[LiveAnswer]:
    """The same ``LiveAnswer`` after each delta, the last time done."""
    live = LiveAnswer()
    try:
        async with client.stream_chat(request) as stream:
            await run.watch(stream)
            async for item in stream:
                if isinstance(item, Delta):
                    live.add(item)
                else:
                    live.finish(item)
                yield live
    except ChatClientError as exc:
        live.fail(exc)
        yield live


async def whole(client: ChatClient, request: ChatRequest, run: Run) -> AsyncIterator[LiveAnswer]:
    """One non-streamed answer (``stream: false``), or a stopped one if Stop came first.

    Stopping drops the request: the backend cancels a non-streamed completion
    whose client went away.
    """
    live = LiveAnswer(streamed=False)
    request_task = asyncio.ensure_future(client.complete(request))
    stop_task = asyncio.ensure_future(run.stopped.wait())
    try:
        await asyncio.wait({request_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (request_task, stop_task):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if request_task.cancelled():
        stopped = AnswerBuilder(request.dialect, streamed=False)
        stopped.cancelled = True
        live.finish(stopped.answer(time.perf_counter() - live.started))
    else:
        try:
            live.finish(request_task.result())
        except ChatClientError as exc:
            live.fail(exc)
    yield live

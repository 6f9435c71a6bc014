"""A whole answer gathered from an engine's deltas: the ``stream: false`` side
of every dialect, and ``run_through``: a rendering generation run to its end
for the dialects that answer with the object it builds (Responses, Messages).

Tool-call fragments are joined per ``index`` (id, type and name come with the
first fragment of a call), text fields are concatenated, and OpenAI-shaped
``logprobs`` are merged list by list. Each dialect renders the ``Answer`` in
its own shape.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Protocol

from backend.engines.base import EngineError, FinishReason, TokenDelta, Usage
from backend.generation.wrappers import close_iterator
from backend.hub.base import Produced

logger = logging.getLogger(__name__)


@dataclass
class CallSoFar:
    """One tool call, joined from its fragments."""

    index: int
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    @property
    def joined_arguments(self) -> str:
        return "".join(self.arguments)


@dataclass
class Answer:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    calls: dict[int, CallSoFar] = field(default_factory=dict)
    logprobs: dict[str, list[Any]] | None = None
    finish_reason: FinishReason = "stop"
    stop_sequence: str | None = None
    usage: Usage | None = None
    deltas: int = 0  # deltas that carried output: a token estimate when usage is missing

    def add(self, delta: TokenDelta) -> None:
        carried = False
        if delta.text:
            self.text.append(delta.text)
            carried = True
        if delta.reasoning:
            self.reasoning.append(delta.reasoning)
            carried = True
        if delta.refusal:
            self.refusal.append(delta.refusal)
            carried = True
        for fragment in delta.tool_calls:
            call = self.calls.get(fragment.index)
            if call is None:
                call = self.calls[fragment.index] = CallSoFar(fragment.index)
            if fragment.id:
                call.id = fragment.id
            if fragment.name:
                call.name += fragment.name
            if fragment.arguments:
                call.arguments.append(fragment.arguments)
            carried = True
        if delta.logprobs is not None:
            merged = self.logprobs if self.logprobs is not None else {}
            for key, items in delta.logprobs.items():
                if isinstance(items, list):
                    merged.setdefault(key, []).extend(items)
            self.logprobs = merged
        if carried:
            self.deltas += 1

    @property
    def tool_calls(self) -> list[CallSoFar]:
        return [self.calls[index] for index in sorted(self.calls)]


async def collect(deltas: AsyncGenerator[TokenDelta, None]) -> Answer:
    """Every delta up to the final one. Raises ``EngineError`` (the engine's, or
    one for a stream that ends without a finish reason)."""
    answer = Answer()
    try:
        async for delta in deltas:
            answer.add(delta)
            if delta.finish_reason is not None:
                answer.finish_reason = delta.finish_reason
                answer.stop_sequence = delta.stop_sequence
                answer.usage = delta.usage
                return answer
    finally:
        # Stopping at the final delta leaves the engine's generator suspended:
        # close it now (its upstream connection, its wrappers' bookkeeping),
        # not whenever the garbage collector gets to it.
        await close_iterator(deltas)
    raise EngineError("The engine ended without a finish reason.")


class Run(Protocol):
    """A generation run for its result: what it yields is not sent anywhere."""

    error: EngineError | None

    def events(self) -> AsyncGenerator[Produced, None]: ...


async def run_through(generation: Run) -> None:
    """Every event of ``generation``, dropped. Raises the engine's ``EngineError`` if
    it failed, and one for a bug in an engine (a 500 for this request, logged)."""
    try:
        async for _ in generation.events():
            pass
    except Exception as error:
        logger.exception("generation failed")
        raise EngineError(f"Generation failed: {error}", error_type="server_error") from error
    if generation.error is not None:
        raise generation.error

"""The simulated engine: deterministic answers of every delta kind, without a model.

Two models, one engine:

- ``ssechat-simulated`` (or the id ``SSECHAT_MODEL`` sets): plain text
  (``words``), tool calls when the request's tools apply (``tools``), JSON
  for ``response_format`` ``json_object`` / ``json_schema`` (a value valid
  against the schema, ``values``), a refusal when the last user message asks
  it to "refuse to answer".
- ``ssechat-simulated-reasoning``: the same answers, after reasoning text
  whose length follows ``reasoning_effort`` (``reasoning``), counted in
  ``usage.reasoning_tokens``.

Every piece (a reasoning or content token, a tool call's first fragment,
each argument piece, a refusal word) is one token: paced at ``tokens_per_s``
and counted against ``max_tokens``; ``stop`` sequences cut the content.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field

from backend.engines.base import (
    EngineError,
    FinishReason,
    GenerationRequest,
    TokenDelta,
    ToolCallDelta,
    Usage,
    refuse_unsupported,
    unsupported,
)
from backend.engines.simulated.reasoning import reasoning_tokens
from backend.engines.simulated.tools import PlanError, PlannedCall, check_calls, planned_calls
from backend.engines.simulated.values import Unsatisfiable, unsatisfiable, value_for
from backend.engines.simulated.words import (
    answer_text,
    count_prompt_tokens,
    request_seed,
    simulated_tokens,
    split_words,
    text_pieces,
)
from backend.engines.text import StopMatcher

DEFAULT_MODEL = "ssechat-simulated"
REASONING_MODEL = "ssechat-simulated-reasoning"

# The request fields beyond plain text this engine honours (asked_for's names);
# reasoning ones on the reasoning model only, non-text content parts never.
_REASONING_ONLY = ("reasoning_effort", "reasoning_budget_tokens")
_SUPPORTED = frozenset({"tools", "tool_choice", "response_format", "messages.content"}).union(
    _REASONING_ONLY
)
_TEXT_PARTS = ("text", "refusal")
_RESPONSE_SCHEMA = "response_format.json_schema.schema"
_ASKS_FOR_A_REFUSAL = re.compile(r"\brefuse to answer\b", re.IGNORECASE)
REFUSAL = "I'm sorry, but I can't help with that."


@dataclass
class Plan:
    """The answer, decided before the first token: reasoning, then one of
    tool calls, a refusal, or content tokens."""

    reasoning: list[str] = field(default_factory=list)
    calls: list[PlannedCall] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)


def _json_answer(request: GenerationRequest) -> str | None:
    """The JSON text a ``response_format`` asks for; None for plain text."""
    form = request.response_format
    if form is None or form.type == "text":
        return None
    if form.type == "json_schema" and form.schema is not None:
        try:
            value = value_for(form.schema, random.Random(f"{request_seed(request)}/json"))
        except Unsatisfiable as error:
            raise PlanError(
                _RESPONSE_SCHEMA,
                f"it cannot write an answer that satisfies this schema ({error})",
            ) from None
    else:
        value = {"answer": answer_text(request)}
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _conclusion(plan: Plan, request: GenerationRequest) -> str:
    if plan.calls:
        names = ", ".join(call.name for call in plan.calls)
        return f"So I will call {names}."
    if plan.refusal:
        return "So I will decline."
    form = request.response_format
    if form is not None and form.type != "text":
        return f"So I will answer in JSON ({form.name or form.type})."
    return "I can answer now."


def asks_for_a_refusal(request: GenerationRequest) -> bool:
    last = request.messages[-1] if request.messages else None
    return (
        last is not None
        and last.role == "user"
        and _ASKS_FOR_A_REFUSAL.search(last.content) is not None
    )


def plan_answer(request: GenerationRequest, *, reasoning: bool, fill: bool) -> Plan:
    """Raises ``PlanError`` for a schema no value satisfies."""
    plan = Plan(calls=planned_calls(request))
    if not plan.calls:  # tool calls are the whole answer; else a refusal, JSON or text
        if asks_for_a_refusal(request):
            plan.refusal = split_words(REFUSAL)
        else:
            json_text = _json_answer(request)
            if json_text is not None:
                plan.content = text_pieces(json_text)
            else:
                plan.content = simulated_tokens(request, request.max_tokens if fill else 0)
    if reasoning:
        plan.reasoning = reasoning_tokens(request, _conclusion(plan, request))
    return plan


def _pause(start: float, count: int, interval: float) -> float | None:
    """How long to sleep before token ``count`` (None: not at all).

    To an absolute schedule, so pacing does not drift with load. A token
    already due goes at once, as an unpaced one does: a loop pass per token
    would only make a late stream later. Every 64th still yields, for
    cancellation and the other streams."""
    delay = start + count * interval - time.monotonic() if interval else 0.0
    if delay > 0:
        return delay
    return 0.0 if count % 64 == 63 else None


class SimulatedEngine:
    """Deterministic answers at ``tokens_per_s`` (0 = as fast as possible)."""

    name = "simulated"

    def __init__(
        self,
        *,
        tokens_per_s: float,
        model: str = DEFAULT_MODEL,
        reasoning_model: str = REASONING_MODEL,
        fill_max_tokens: bool = False,
    ) -> None:
        self._tokens_per_s = tokens_per_s
        self._model = model
        self._reasoning_model = reasoning_model
        self._fill_max_tokens = fill_max_tokens

    @property
    def models(self) -> tuple[str, ...]:
        return (self._model, self._reasoning_model)

    def check(self, request: GenerationRequest) -> None:
        refuse_unsupported(request, self.name, _SUPPORTED)
        if request.model != self._reasoning_model:
            for param in _REASONING_ONLY:
                if getattr(request, param) is not None:
                    raise unsupported(
                        param,
                        self.name,
                        f"the model '{request.model}' does not reason; "
                        f"'{self._reasoning_model}' does",
                    )
        for index, message in enumerate(request.messages):
            for part in message.parts:
                if part.type not in _TEXT_PARTS:
                    raise unsupported(
                        f"messages[{index}].content",
                        self.name,
                        f"it reads text only, not '{part.type}' parts",
                    )
        try:
            check_calls(request)
        except PlanError as error:
            raise unsupported(error.param, self.name, error.why) from None
        form = request.response_format
        if form is not None and form.type == "json_schema" and form.schema is not None:
            problem = unsatisfiable(form.schema)
            if problem is not None:
                raise unsupported(
                    _RESPONSE_SCHEMA,
                    self.name,
                    f"it cannot write an answer that satisfies this schema ({problem})",
                )

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        reasoning_model = request.model == self._reasoning_model
        plain = not (reasoning_model or request.tools or request.response_format)
        if plain and not asks_for_a_refusal(request):
            tokens = simulated_tokens(request, request.max_tokens if self._fill_max_tokens else 0)
            plan = Plan(content=tokens)
        else:
            try:
                plan = plan_answer(request, reasoning=reasoning_model, fill=False)
            except PlanError as error:  # check() refuses these before streaming
                raise EngineError(error.why, code="unsupported_parameter") from None
        interval = 1.0 / self._tokens_per_s if self._tokens_per_s > 0 else 0.0
        start = time.monotonic()
        budget = request.max_tokens
        finish: FinishReason = "tool_calls" if plan.calls else "stop"
        count = 0
        # Everything but content: one delta per token, on the same schedule.
        for delta in self._deltas_before_content(plan):
            if count >= budget:
                finish = "length"
                break
            await self._pace(start, count, interval)
            count += 1
            yield delta
        reasoning_count = min(len(plan.reasoning), count)
        matcher = StopMatcher(request.stop)
        matching = matcher.active
        if finish != "length":
            for token in plan.content:
                if count >= budget:
                    finish = "length"
                    break
                pause = _pause(start, count, interval)
                if pause is not None:
                    await asyncio.sleep(pause)
                count += 1
                text = matcher.feed(token) if matching else token
                if text:
                    yield TokenDelta(text)
                if matcher.stopped:
                    break
        tail = matcher.flush()
        usage = Usage(
            count_prompt_tokens(request),
            count,
            reasoning_tokens=reasoning_count if reasoning_model else None,
        )
        yield TokenDelta(tail, finish_reason=finish, usage=usage, stop_sequence=matcher.matched)

    @staticmethod
    def _deltas_before_content(plan: Plan) -> Iterator[TokenDelta]:
        for piece in plan.reasoning:
            yield TokenDelta(reasoning=piece)
        for call in plan.calls:
            first = ToolCallDelta(call.index, id=call.id, name=call.name, type="function")
            yield TokenDelta(tool_calls=(first,))
            for piece in call.pieces:
                yield TokenDelta(tool_calls=(ToolCallDelta(call.index, arguments=piece),))
        for piece in plan.refusal:
            yield TokenDelta(refusal=piece)

    @staticmethod
    async def _pace(start: float, count: int, interval: float) -> None:
        pause = _pause(start, count, interval)
        if pause is not None:
            await asyncio.sleep(pause)

    async def aclose(self) -> None:
        return None

"""Engines that fail on purpose, plugged in with ``create_app(extra_engines=...)``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from backend.engines.base import EngineError, GenerationRequest, TokenDelta, refuse_unsupported


class FailingEngine:
    """Yields ``tokens_before_failure`` tokens, then fails.

    ``crash=False`` raises ``EngineError`` (an engine reporting a fault);
    ``crash=True`` raises a plain ``RuntimeError`` (a bug in an engine).
    """

    name = "failing"

    def __init__(self, model: str, *, tokens_before_failure: int, crash: bool) -> None:
        self._model = model
        self._tokens = tokens_before_failure
        self._crash = crash

    @property
    def models(self) -> tuple[str, ...]:
        return (self._model,)

    def check(self, request: GenerationRequest) -> None:
        refuse_unsupported(request, self.name, frozenset())

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        for index in range(self._tokens):
            await asyncio.sleep(0)
            yield TokenDelta(f" t{index}")
        if self._crash:
            raise RuntimeError("engine bug: index out of range")
        raise EngineError("model backend went away", error_type="engine_error", code="gone")

    async def aclose(self) -> None:
        return None

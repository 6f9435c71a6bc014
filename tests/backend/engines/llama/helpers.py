"""Shared by the llama engine's model tests: requests and collected deltas."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from backend.engines.base import ChatMessage, GenerationRequest, TokenDelta


def request(
    question: str,
    *,
    max_tokens: int = 20,
    temperature: float = 0.0,
    **fields: Any,
) -> GenerationRequest:
    """One user turn, greedy unless told otherwise; ``fields`` are GenerationRequest's."""
    return GenerationRequest(
        messages=(ChatMessage("user", question),),
        model="gemma-3-270m",
        max_tokens=max_tokens,
        temperature=temperature,
        **fields,
    )


async def collect(deltas: AsyncGenerator[TokenDelta, None]) -> list[TokenDelta]:
    """Every delta of a stream that ends properly: one final delta, with usage."""
    out = [delta async for delta in deltas]
    assert out, "no deltas"
    assert out[-1].finish_reason is not None
    assert out[-1].usage is not None
    assert all(delta.finish_reason is None for delta in out[:-1])
    return out


def text(deltas: list[TokenDelta]) -> str:
    return "".join(delta.text for delta in deltas)

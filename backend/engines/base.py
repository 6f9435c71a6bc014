"""The engine protocol: what every token source offers the rest of the backend.

An engine turns a ``GenerationRequest`` into an async stream of ``TokenDelta``.
Cancellation is plain asyncio cancellation of the consuming task: an engine
must stop producing promptly when the ``await`` it is parked on is cancelled,
and release what it holds (threads, upstream connections) in ``finally``.
"""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

Role = Literal["system", "user", "assistant", "developer", "tool"]
FinishReason = Literal["stop", "length", "cancelled", "error"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """What an engine needs to know; already validated by the route."""

    messages: tuple[ChatMessage, ...]
    model: str
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """A piece of generated text; the last delta of a stream carries ``finish_reason``.

    ``text`` is always whole characters: engines that produce bytes decode them
    with ``Utf8Decoder`` so a character is never split across deltas.
    """

    text: str
    finish_reason: FinishReason | None = None
    usage: Usage | None = field(default=None)


class EngineError(Exception):
    """A failure inside an engine, reported to the client as an error event."""

    def __init__(self, message: str, *, error_type: str = "engine_error", code: str | None = None):
        super().__init__(message)
        self.message = message
        self.error_type = error_type
        self.code = code


class Engine(Protocol):
    """A token source. ``name`` is the engine kind, ``models`` the ids it serves."""

    @property
    def name(self) -> str: ...

    @property
    def models(self) -> tuple[str, ...]: ...

    def stream(self, request: GenerationRequest) -> AsyncIterator[TokenDelta]:
        """Yield deltas; the final one has ``finish_reason`` and ``usage`` set."""
        ...

    async def aclose(self) -> None:
        """Release resources (model, connection pools)."""
        ...


class Utf8Decoder:
    """Turns arbitrary byte pieces into whole characters.

    Model tokens are byte sequences: one emoji may arrive as four one-byte
    tokens. An incremental decoder holds back an incomplete sequence until the
    rest arrives, so the wire never carries half a character.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: bytes) -> str:
        return self._decoder.decode(piece, final=False)

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)

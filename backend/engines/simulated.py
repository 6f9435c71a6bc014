"""A deterministic engine: plausible answers without a model.

Same messages + seed give the same token sequence (max_tokens only cuts it),
streamed or not, on any machine: the text comes from ``random.Random``
seeded with a SHA-256 of the request, never from the process's hash seed.
Tokens are word pieces with leading spaces, punctuation, and some
multi-byte text (CJK, accents, emoji), so clients are exercised on UTF-8.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections.abc import AsyncIterator

from backend.engines.base import (
    FinishReason,
    GenerationRequest,
    TokenDelta,
    Usage,
    refuse_unsupported,
)
from backend.engines.text import StopMatcher

DEFAULT_MODEL = "ssechat-simulated"

_OPENERS = (
    "Sure.",
    "Good question.",
    "Here is the short version.",
    "Let me explain.",
    "In short:",
)
_SUBJECTS = (
    "the server",
    "each token",
    "the event stream",
    "a browser's EventSource",
    "the client",
    "Server-Sent Events",
    "streaming output (流式输出)",
    "the café's Wi-Fi",
    "a resumed stream",
    "the model",
)
_VERBS = (
    "sends",
    "keeps",
    "replays",
    "streams",
    "buffers",
    "numbers",
    "delivers",
    "resumes",
    "flushes",
)
_OBJECTS = (
    "every event with an id",
    "partial answers as they arrive",
    "the text after Last-Event-ID",
    "one line of JSON per event",
    "a keep-alive comment when idle",
    "tokens without waiting for the end",
    "whole UTF-8 characters — never half of one",
    "the answer 🚀 token by token",
    "data over plain HTTP",
)
_TAILS = (".", ".", ".", "!", ", which is the point.", " — quickly.", "; nothing is lost.")


def _split_words(sentence: str) -> list[str]:
    """Word-like tokens: a leading space belongs to the word, like BPE tokens."""
    tokens: list[str] = []
    for index, word in enumerate(sentence.split(" ")):
        piece = word if index == 0 else " " + word
        # Long words split into two pieces, as subword tokenizers do.
        if len(piece) > 8:
            middle = len(piece) // 2
            tokens.extend((piece[:middle], piece[middle:]))
        else:
            tokens.append(piece)
    return tokens


def _request_seed(request: GenerationRequest) -> int:
    digest = hashlib.sha256()
    for message in request.messages:
        digest.update(message.role.encode())
        digest.update(b"\0")
        digest.update(message.content.encode("utf-8", "replace"))
        digest.update(b"\1")
    digest.update(str(request.seed).encode())
    return int.from_bytes(digest.digest()[:8], "big")


def simulated_tokens(request: GenerationRequest, min_tokens: int = 0) -> list[str]:
    """The whole answer this request gets, before ``max_tokens`` cuts it.

    4 to 9 sentences, then more until there are at least ``min_tokens`` tokens.
    The sentences come from one seeded generator, so a longer answer starts
    with exactly the text of the shorter one.
    """
    rng = random.Random(_request_seed(request))
    tokens = _split_words(rng.choice(_OPENERS))
    natural = rng.randint(4, 9)
    index = 1
    while index <= natural or len(tokens) < min_tokens:
        sentence = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}"
        words = _split_words(sentence[0].upper() + sentence[1:] + rng.choice(_TAILS))
        words[0] = ("\n\n" if index % 3 == 0 else " ") + words[0]
        tokens.extend(words)
        index += 1
    return tokens


def count_prompt_tokens(request: GenerationRequest) -> int:
    return sum(len(message.content.split()) + 3 for message in request.messages)


class SimulatedEngine:
    """Deterministic tokens at ``tokens_per_s`` (0 = as fast as possible)."""

    name = "simulated"

    def __init__(
        self, *, tokens_per_s: float, model: str = DEFAULT_MODEL, fill_max_tokens: bool = False
    ) -> None:
        self._tokens_per_s = tokens_per_s
        self._model = model
        self._fill_max_tokens = fill_max_tokens

    @property
    def models(self) -> tuple[str, ...]:
        return (self._model,)

    def check(self, request: GenerationRequest) -> None:
        refuse_unsupported(request, self.name, frozenset())

    async def stream(self, request: GenerationRequest) -> AsyncIterator[TokenDelta]:
        tokens = simulated_tokens(request, request.max_tokens if self._fill_max_tokens else 0)
        matcher = StopMatcher(request.stop)
        count = 0
        interval = 1.0 / self._tokens_per_s if self._tokens_per_s > 0 else 0.0
        start = time.monotonic()
        finish: FinishReason = "stop"
        for token in tokens:
            if count >= request.max_tokens:
                finish = "length"
                break
            if interval:
                # Sleep to an absolute schedule so pacing does not drift with load.
                delay = start + count * interval - time.monotonic()
                await asyncio.sleep(delay if delay > 0 else 0)
            elif count % 64 == 63:
                await asyncio.sleep(0)  # let cancellation and other streams in
            count += 1
            text = matcher.feed(token) if matcher.active else token
            if text:
                yield TokenDelta(text)
            if matcher.stopped:
                break
        tail = matcher.flush()
        yield TokenDelta(
            tail, finish_reason=finish, usage=Usage(count_prompt_tokens(request), count)
        )

    async def aclose(self) -> None:
        return None

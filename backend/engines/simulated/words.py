"""The simulated engine's plain text: plausible answers without a model.

Same messages + seed give the same token sequence (max_tokens only cuts it),
streamed or not, on any machine: the text comes from ``random.Random``
seeded with a SHA-256 of the request, never from the process's hash seed.
Tokens are word pieces with leading spaces, punctuation, and some
multi-byte text (CJK, accents, emoji), so clients are exercised on UTF-8.
"""

from __future__ import annotations

import hashlib
import random
import re
import sys

from backend.engines.base import GenerationRequest

_OPENERS = (
    "Sure.",
    "Good question.",
    "Here is the short version.",
    "Let me explain.",
    "In short:",
)
SUBJECTS = (
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
VERBS = (
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
OBJECTS = (
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


def split_words(sentence: str) -> list[str]:
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


def request_seed(request: GenerationRequest) -> int:
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
    with exactly the text of the shorter one. The tokens are interned: they
    come from a small fixed vocabulary, so every answer shares its token
    strings (as a model shares its tokenizer's) and an open stream holds
    only its list of them.
    """
    rng = random.Random(request_seed(request))
    tokens = [sys.intern(token) for token in split_words(rng.choice(_OPENERS))]
    natural = rng.randint(4, 9)
    index = 1
    while index <= natural or len(tokens) < min_tokens:
        sentence = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        words = split_words(sentence[0].upper() + sentence[1:] + rng.choice(_TAILS))
        words[0] = ("\n\n" if index % 3 == 0 else " ") + words[0]
        tokens.extend(sys.intern(word) for word in words)
        index += 1
    return tokens


def count_prompt_tokens(request: GenerationRequest) -> int:
    return sum(len(message.content.split()) + 3 for message in request.messages)


# Runs of word characters, or of anything else, each with the spaces before
# it: JSON text in pieces the size of a tokenizer's ("{\"", "city", "\":\"").
_PIECE = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+")
_LONGEST_PIECE = 8


def text_pieces(text: str) -> list[str]:
    """``text`` (JSON, or any text not written by ``simulated_tokens``) as tokens:
    runs longer than a token are cut, and there are always several pieces."""
    pieces: list[str] = []
    for match in _PIECE.finditer(text):
        run = match.group()
        while len(run) > _LONGEST_PIECE:
            pieces.append(run[:_LONGEST_PIECE])
            run = run[_LONGEST_PIECE:]
        pieces.append(run)
    if len(pieces) == 1 and len(text) > 1:
        pieces = [text[: len(text) // 2], text[len(text) // 2 :]]
    return pieces


def answer_text(request: GenerationRequest) -> str:
    """The natural-length plain answer as one string (what a JSON answer wraps)."""
    return "".join(simulated_tokens(request)).strip()

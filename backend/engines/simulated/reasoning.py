"""What the simulated reasoning model thinks before it answers.

A few sentences about the question, then one that says what the answer will
be (a tool call, JSON, a refusal, or text), as word-piece tokens. Its length
follows ``reasoning_effort`` (and, where the dialect has one, a reasoning
token budget); the text comes from its own seeded generator, so the answer
after it is the one the plain model gives.
"""

from __future__ import annotations

import random

from backend.engines.base import GenerationRequest
from backend.engines.simulated.words import OBJECTS, SUBJECTS, VERBS, request_seed, split_words

# Reasoning tokens per effort, at most (whole sentences, so often a few fewer).
EFFORT_TOKENS = {
    "none": 0,
    "minimal": 12,
    "low": 32,
    "medium": 80,
    "high": 160,
    "xhigh": 240,
    "max": 320,
}
DEFAULT_EFFORT = "medium"

_THOUGHTS = (
    "I should mention that {subject} {verb} {object}.",
    "Key point: {subject} {verb} {object}.",
    "Maybe start with how {subject} {verb} {object}.",
    "Hmm, does {subject} matter here? It {verb} {object}, so yes.",
    "Also worth saying: {subject} {verb} {object}.",
    "Wait, let me check that {subject} {verb} {object}. Right.",
)
_QUOTED_WORDS = 8


def reasoning_budget(request: GenerationRequest) -> int:
    target = EFFORT_TOKENS[request.reasoning_effort or DEFAULT_EFFORT]
    if request.reasoning_budget_tokens is not None:
        target = min(target, request.reasoning_budget_tokens)
    return target


def reasoning_tokens(request: GenerationRequest, conclusion: str) -> list[str]:
    """At most ``reasoning_budget`` tokens (whole sentences) ending with ``conclusion``
    (which alone may pass a tiny budget); none for effort "none"."""
    budget = reasoning_budget(request)
    if budget <= 0:
        return []
    rng = random.Random(f"{request_seed(request)}/reasoning")
    last = next((m for m in reversed(request.messages) if m.role in ("user", "tool")), None)
    words = last.content.split() if last is not None else []
    quoted = " ".join(words[:_QUOTED_WORDS]) + (" …" if len(words) > _QUOTED_WORDS else "")
    who = "The tool returned" if last is not None and last.role == "tool" else "The user asks"
    opener = f"{who}: “{quoted}”." if quoted else "There is no question yet."
    tokens = split_words(opener)
    closing = split_words(conclusion)
    if len(tokens) + len(closing) > budget:  # too little effort for more than the conclusion
        tokens = []
    else:
        closing[0] = " " + closing[0]
    while True:
        thought = rng.choice(_THOUGHTS).format(
            subject=rng.choice(SUBJECTS), verb=rng.choice(VERBS), object=rng.choice(OBJECTS)
        )
        words = split_words(thought[0].upper() + thought[1:])
        if len(tokens) + len(words) + len(closing) > budget:
            break
        if tokens:
            words[0] = ("\n\n" if rng.random() < 0.25 else " ") + words[0]
        elif closing[0][0] != " ":
            closing[0] = " " + closing[0]
        tokens.extend(words)
    everything = [*tokens, *closing]
    if request.reasoning_budget_tokens is not None:  # a hard cap, unlike an effort
        everything = everything[: request.reasoning_budget_tokens]
    return everything

"""What the worker does to and with the model's logits, token by token.

- ``NoCopy``: the model may not copy a run of ``COPY_NGRAM`` tokens from an
  earlier assistant answer of the same chat. A base model continues the
  pattern it sees, so asked a second time it repeats its first answer word
  for word; banning the token that would complete such a run makes it say it
  anew (a short answer like "Paris." stays possible). ``bench/prompt_leak.py``
  measures it.
- ``LogitsShaper``: the ``logits_processor`` handed to ``Llama.generate``:
  ``logit_bias`` (token id → added logit, as OpenAI defines it) and the
  no-copy ban. It runs before every other sampler (penalties, grammar, top_k).
- ``token_logprobs``: one OpenAI ``logprobs.content`` entry for a sampled
  token, from the raw logits it was sampled from (before temperature, top_k,
  bias or grammar: the model's own distribution, as OpenAI reports it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

# Tokens in a copied run that the no-copy rule forbids: long enough to leave
# short answers and common phrases alone, short enough to catch a repeated sentence.
COPY_NGRAM: Final = 6


class NoCopy:
    """Bans the next token of any ``COPY_NGRAM``-token run found in ``sources``."""

    def __init__(self, sources: Iterable[Sequence[int]], n: int = COPY_NGRAM) -> None:
        self._n = n
        self._next: dict[tuple[int, ...], set[int]] = {}
        for tokens in sources:
            for start in range(len(tokens) - n + 1):
                key = tuple(tokens[start : start + n - 1])
                self._next.setdefault(key, set()).add(tokens[start + n - 1])

    def __bool__(self) -> bool:
        return bool(self._next)

    def banned(self, history: Sequence[int]) -> set[int]:
        """Tokens that would complete a copied run after ``history``."""
        if len(history) < self._n - 1:
            return set()
        return self._next.get(tuple(history[len(history) - self._n + 1 :]), set())


class LogitsShaper:
    """``logit_bias`` and the no-copy rule, as a llama-cpp-python logits processor.

    ``accept`` must see every sampled token, in order (the worker calls it as
    ``Llama.generate`` yields them).
    """

    def __init__(self, bias: Mapping[int, float], no_copy: NoCopy | None) -> None:
        self._ids = np.fromiter(bias.keys(), dtype=np.intc, count=len(bias))
        self._bias = np.fromiter(bias.values(), dtype=np.single, count=len(bias))
        self._no_copy = no_copy if no_copy else None
        self._history: list[int] = []

    def __bool__(self) -> bool:
        return bool(len(self._ids)) or self._no_copy is not None

    def accept(self, token: int) -> None:
        self._history.append(token)

    def __call__(
        self, input_ids: npt.NDArray[np.intc], scores: npt.NDArray[np.single]
    ) -> npt.NDArray[np.single]:
        if len(self._ids):
            scores[self._ids] += self._bias
        if self._no_copy is not None:
            for token in self._no_copy.banned(self._history):
                scores[token] = -np.inf
        return scores


def token_logprobs(
    logits: npt.NDArray[np.single],
    token: int,
    top: int,
    piece: Callable[[int], bytes],
) -> dict[str, Any]:
    """The ``logprobs.content`` entry of ``token``, with the ``top`` likeliest alternatives."""
    shifted = logits.astype(np.float64) - float(logits.max())
    logprobs = shifted - np.log(np.exp(shifted).sum())
    entry = _entry(token, float(logprobs[token]), piece)
    best: list[dict[str, Any]] = []
    if top > 0:
        candidates = np.argpartition(logprobs, -top)[-top:]
        ranked = sorted(candidates.tolist(), key=lambda t: -float(logprobs[t]))
        best = [_entry(t, float(logprobs[t]), piece) for t in ranked]
    entry["top_logprobs"] = best
    return entry


def _entry(token: int, logprob: float, piece: Callable[[int], bytes]) -> dict[str, Any]:
    raw = piece(token)
    return {"token": raw.decode("utf-8", "replace"), "logprob": logprob, "bytes": list(raw)}

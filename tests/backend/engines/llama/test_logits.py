"""Logit bias, the no-copy rule and logprobs (backend/engines/llama/logits.py), on arrays."""

from __future__ import annotations

import math

import numpy as np

from backend.engines.llama.logits import LogitsShaper, NoCopy, token_logprobs


def test_no_copy_bans_only_the_token_completing_a_run() -> None:
    rule = NoCopy([[1, 2, 3, 4]], n=3)
    assert rule.banned([1, 2]) == {3}
    assert rule.banned([9, 2, 3]) == {4}
    assert rule.banned([2]) == set()  # too short to complete a run
    assert rule.banned([1, 3]) == set()
    assert not NoCopy([[1, 2]], n=3)  # a source shorter than a run bans nothing


def test_shaper_biases_and_bans_in_place() -> None:
    shaper = LogitsShaper({2: 5.0, 0: -100.0}, NoCopy([[7, 8, 9]], n=2))
    scores = np.zeros(10, dtype=np.single)
    out = shaper(np.array([], dtype=np.intc), scores)
    assert out[2] == 5.0
    assert out[0] == -100.0
    assert np.isfinite(out).all()  # nothing sampled yet: nothing to ban
    shaper.accept(8)
    out = shaper(np.array([], dtype=np.intc), np.zeros(10, dtype=np.single))
    assert out[9] == -np.inf
    assert np.isfinite(np.delete(out, 9)).all()
    assert not LogitsShaper({}, NoCopy([], n=2))


def test_token_logprobs_are_a_normalised_distribution() -> None:
    logits = np.array([0.0, 2.0, 1.0, -1.0], dtype=np.single)
    pieces = {0: b"a", 1: b" b", 2: "é".encode(), 3: b"\xf0"}
    entry = token_logprobs(logits, 2, 2, pieces.__getitem__)
    total = math.log(sum(math.exp(x) for x in (0.0, 2.0, 1.0, -1.0)))
    assert entry["token"] == "é"
    assert entry["bytes"] == list("é".encode())
    assert math.isclose(entry["logprob"], 1.0 - total, rel_tol=1e-6)
    assert [alt["token"] for alt in entry["top_logprobs"]] == [" b", "é"]
    assert token_logprobs(logits, 3, 0, pieces.__getitem__)["token"] == "\ufffd"

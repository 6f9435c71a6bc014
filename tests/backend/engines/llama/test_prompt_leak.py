"""The prompt does not leak into answers (issue 13), on the real model.

A short version of ``bench/prompt_leak.py`` (its prompts and measures):
no answer copies the former prompt's example exchanges, and a question asked
again is not answered with a copy of the first answer. The second check runs
greedy, where the model, left alone, repeats its first answer word for word.
"""

from __future__ import annotations

import pytest

from backend.engines.llama import LlamaEngine
from bench.prompt_leak import PROMPTS, copies_an_example, engine_ask, measure

# Prompts whose greedy answer the model repeats verbatim when asked again.
REPEATED: tuple[str, ...] = (
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "How do I boil an egg?",
)
# On a loaded machine these run several times slower than alone (about 15 s).
pytestmark = [pytest.mark.llama, pytest.mark.timeout(180)]


async def test_no_answer_copies_the_former_examples(engine: LlamaEngine) -> None:
    ask = engine_ask(engine)
    answers = [await ask([("user", prompt)], 12) for prompt in PROMPTS]

    assert len(answers) == 20
    assert sum(bool(answer.strip()) for answer in answers) >= 18
    leaks = [a for p, a in zip(PROMPTS, answers, strict=True) if copies_an_example(a, p)]
    assert leaks == []


async def test_asked_again_the_model_does_not_copy_its_answer(engine: LlamaEngine) -> None:
    result = await measure(engine_ask(engine, temperature=0.0), REPEATED, 20)

    assert result["earlier_answer_copies"] == 0, result["rows"]
    assert result["empty"] == 0
    for row in result["rows"]:
        assert row["again"].strip()

"""Does the local model's prompt leak into its answers? (issue 13)

The base model (Gemma 3 270M) continues text. Its former prompt carried two
example exchanges, and answers copied them ("hi" → "I was asked to write a
haiku about autumn…", "Water boils at 100 °C…" verbatim); asked the same
question again, it copied its own earlier answer. Two measures over the same
20 varied prompts, at the UI's sampling defaults (temperature 0.7, top_p 1.0)
and a fixed seed:

- example copies: answers holding a run of ``EXAMPLE_RUN_WORDS`` words of a
  former example (question or answer), word for word;
- earlier-answer copies: the prompt asked again after the model's first
  answer; the second answer holds a run of ``COPY_RUN_WORDS`` words of the first.

Two sides: ``ours`` is the llama engine as it is (``LlamaEngine.stream``,
in this process); ``former`` is the former prompt (examples included) sampled
by llama-cpp-python directly with the engine's settings, which is what the
engine did before. Also reported: answers that echo the question, and empty
answers. ``python -m bench.prompt_leak``; figures in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Final

from bench.llama_direct import load_direct, sampling
from bench.support import RESULTS, write_json

logger = logging.getLogger("bench.prompt_leak")

PROMPTS: Final = (
    "hi",
    "Hello!",
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "How do I boil an egg?",
    "Tell me a joke.",
    "What is 12 times 7?",
    "Who wrote Romeo and Juliet?",
    "Give me three tips for sleeping better.",
    "Translate 'good morning' into Spanish.",
    "What does a CPU do?",
    "Describe a cat in one sentence.",
    "thanks!",
    "What's the weather like on Mars?",
    "Write a short poem about autumn.",
    "Why is the sky blue?",
    "Recommend a book.",
    "How many legs does a spider have?",
    "What is Python?",
    "Summarize the plot of Cinderella.",
)
# The former prompt's example exchanges, whose text leaked.
FORMER_EXAMPLES: Final = (
    ("What is the boiling point of water?", "Water boils at 100 °C (212 °F) at sea level."),
    (
        "Write a haiku about autumn.",
        "Crisp leaves drift and fall,\ngolden light on quiet paths,\nthe year exhales slow.",
    ),
)
FORMER_SYSTEM: Final = (
    "The following is a conversation between a curious user and a helpful, "
    "knowledgeable assistant. The assistant answers clearly and concisely."
)
EXAMPLE_RUN_WORDS: Final = 4
COPY_RUN_WORDS: Final = 6
TEMPERATURE: Final = 0.7
TOP_P: Final = 1.0
SEED: Final = 7
MAX_TOKENS: Final = 48

Ask = Callable[[Sequence[tuple[str, str]], int], Awaitable[str]]


# -- the measures -------------------------------------------------------------------------


def words(text: str) -> list[str]:
    """Lower-case words without surrounding punctuation ("Fall," and "fall" match)."""
    found = (re.sub(r"^\W+|\W+$", "", word.lower()) for word in text.split())
    return [word for word in found if word]


def runs(text: str, run: int) -> set[tuple[str, ...]]:
    """Every ``run`` consecutive words of ``text``."""
    found = words(text)
    return {tuple(found[i : i + run]) for i in range(len(found) - run + 1)}


def copies_an_example(answer: str, prompt: str) -> bool:
    """True if ``answer`` holds a run of a former example that ``prompt`` does not
    (echoing the user's own words is not a leak)."""
    leaked = runs(answer, EXAMPLE_RUN_WORDS) - runs(prompt, EXAMPLE_RUN_WORDS)
    return any(
        leaked & runs(text, EXAMPLE_RUN_WORDS) for example in FORMER_EXAMPLES for text in example
    )


def copies_the_first_answer(first: str, second: str) -> bool:
    return bool(runs(first, COPY_RUN_WORDS) & runs(second, COPY_RUN_WORDS))


async def measure(ask: Ask, prompts: Sequence[str], max_tokens: int) -> dict[str, Any]:
    """Both measures for one side: each prompt, then the same prompt asked again."""
    rows = []
    for prompt in prompts:
        first = await ask([("user", prompt)], max_tokens)
        second = await ask([("user", prompt), ("assistant", first), ("user", prompt)], max_tokens)
        rows.append(
            {
                "prompt": prompt,
                "answer": first,
                "again": second,
                "copies_example": copies_an_example(first, prompt)
                or copies_an_example(second, prompt),
                "copies_first": copies_the_first_answer(first, second),
                "echoes_prompt": words(first) == words(prompt),
                "empty": not first.strip(),
            }
        )
    return {
        "example_copies": sum(row["copies_example"] for row in rows),
        "earlier_answer_copies": sum(row["copies_first"] for row in rows),
        "echoes": sum(row["echoes_prompt"] for row in rows),
        "empty": sum(row["empty"] for row in rows),
        "prompts": len(rows),
        "rows": rows,
    }


# -- the two sides ------------------------------------------------------------------------


def engine_ask(engine: Any, temperature: float = TEMPERATURE) -> Ask:
    """``ours``: the llama engine itself."""
    from backend.engines.base import ChatMessage, GenerationRequest

    async def ask(turns: Sequence[tuple[str, str]], max_tokens: int) -> str:
        request = GenerationRequest(
            messages=tuple(ChatMessage(role, text) for role, text in turns),  # type: ignore[arg-type]
            model=engine.models[0],
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=TOP_P,
            seed=SEED,
        )
        return "".join([delta.text async for delta in engine.stream(request)])

    return ask


def former_ask(llm: Any) -> Ask:
    """``former``: the prompt with examples, sampled as the engine sampled it."""
    examples = "\n\n".join(f"User: {q}\nAssistant: {a}" for q, a in FORMER_EXAMPLES)

    async def ask(turns: Sequence[tuple[str, str]], max_tokens: int) -> str:
        parts = [FORMER_SYSTEM, "\n\n", examples]
        for role, text in turns:
            label = "User" if role == "user" else "Assistant"
            parts.append(("\n\n" if role == "user" else "\n") + f"{label}: {text.strip()}")
        parts.append("\nAssistant:")
        out = llm.create_completion(
            "".join(parts),
            max_tokens=max_tokens,
            **sampling(TEMPERATURE, TOP_P, SEED),
        )
        return str(out["choices"][0]["text"]).strip()

    return ask


async def run(prompts: Sequence[str], max_tokens: int) -> dict[str, Any]:
    from backend.engines.llama import load_llama_engine

    engine = load_llama_engine(n_ctx=2048)
    started = time.perf_counter()
    try:
        ours = await measure(engine_ask(engine), prompts, max_tokens)
    finally:
        await engine.aclose()
    ours["seconds"] = time.perf_counter() - started

    llm, _ = load_direct()
    started = time.perf_counter()
    former = await measure(former_ask(llm), prompts, max_tokens)
    former["seconds"] = time.perf_counter() - started
    llm.close()
    return {
        "settings": {
            "prompts": len(prompts),
            "temperature": TEMPERATURE,
            "top_p": TOP_P,
            "seed": SEED,
            "max_tokens": max_tokens,
            "example_run_words": EXAMPLE_RUN_WORDS,
            "copy_run_words": COPY_RUN_WORDS,
        },
        "ours": ours,
        "former": former,
        "finished_at": time.time(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS)
    parser.add_argument("--out", type=Path, default=RESULTS / "prompt_leak.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = asyncio.run(run(PROMPTS, args.max_tokens))
    write_json(args.out, result)
    summary = {
        side: {
            key: result[side][key]
            for key in ("example_copies", "earlier_answer_copies", "echoes", "empty", "prompts")
        }
        for side in ("ours", "former")
    }
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

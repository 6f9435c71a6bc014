"""The simulated engine: deterministic answers of every delta kind, without a model.

- ``engine``: the engine, its two models, and the plan of an answer.
- ``words``: the plain text (unchanged since the first release: tests and
  benchmarks pin it), and text cut into token-sized pieces.
- ``tools``: when a tool is called, and its arguments.
- ``values`` / ``patterns``: JSON values valid against a JSON Schema.
- ``reasoning``: what the reasoning model thinks first.
"""

from backend.engines.simulated.engine import (
    DEFAULT_MODEL,
    REASONING_MODEL,
    REFUSAL,
    SimulatedEngine,
    plan_answer,
)
from backend.engines.simulated.words import count_prompt_tokens, simulated_tokens

__all__ = [
    "DEFAULT_MODEL",
    "REASONING_MODEL",
    "REFUSAL",
    "SimulatedEngine",
    "count_prompt_tokens",
    "plan_answer",
    "simulated_tokens",
]

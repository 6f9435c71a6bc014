"""The ``llama`` engine: local GGUF inference through llama-cpp-python (default:
Gemma 3 270M, a base model).

- ``prompt``: the transcript format the base model continues;
- ``grammar``: GBNF grammars for JSON answers, JSON Schemas and tool names;
- ``logits``: logit bias, the no-copy rule, logprobs;
- ``worker``: one generation on the model (blocking, on the worker thread);
- ``engine``: ``LlamaEngine``, the asyncio side (queue, cancellation, checks);
- ``loader``: the model file, thread counts, ``load_llama_engine``.

Importing this package does not import llama-cpp-python; loading a model does.
"""

from backend.engines.llama.engine import DEFAULT_MODEL_ID, LlamaEngine
from backend.engines.llama.loader import (
    default_model_path,
    default_threads,
    load_llama_engine,
    usable_cpus,
)
from backend.engines.llama.prompt import (
    DEFAULT_SYSTEM,
    TURN_STOPS,
    AnswerTrimmer,
    answer_prompt,
    build_prompt,
)
from backend.engines.llama.worker import MIN_P, REPEAT_PENALTY, TOP_K

__all__ = [
    "DEFAULT_MODEL_ID",
    "DEFAULT_SYSTEM",
    "MIN_P",
    "REPEAT_PENALTY",
    "TOP_K",
    "TURN_STOPS",
    "AnswerTrimmer",
    "LlamaEngine",
    "answer_prompt",
    "build_prompt",
    "default_model_path",
    "default_threads",
    "load_llama_engine",
    "usable_cpus",
]

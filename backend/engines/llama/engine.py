"""``LlamaEngine``: the asyncio side of the local model.

One model context serves every request, so generations are serialized: each
request becomes one job on a single worker thread that also holds a lock on
the model (``Worker.run``, blocking). Deltas come back to the event loop
through ``loop.call_soon_threadsafe`` into an ``asyncio.Queue``.

Cancellation is a ``threading.Event`` set when the consuming task is cancelled
(or the stream is closed). The worker checks it between prompt chunks and
between tokens, so it stops within about one token time and frees the lock; a
request cancelled while still queued is removed from the queue and never runs.

What it honours, and what it refuses by name (``check``):

- tools: a forced call (``tool_choice`` "required" or a named function) is
  sampled under a grammar and streamed as tool-call fragments. ``auto`` (the
  default when tools are given) is refused: asked to choose, this base model
  never calls a tool, so "auto" would quietly mean "none";
- ``response_format`` json_object / json_schema: grammar-constrained content;
- ``logprobs`` / ``top_logprobs`` (content tokens), ``logit_bias`` (Gemma
  token ids), ``top_k``, ``presence_penalty``, ``frequency_penalty``;
- refused: image, audio and file parts (the model reads text), reasoning
  effort and budget (it does not reason first), and any field unknown to
  ssechat.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import Any, Final

from backend.engines.base import (
    EngineError,
    GenerationRequest,
    TokenDelta,
    ToolSpec,
    asked_for,
    unsupported,
)
from backend.engines.llama.grammar import check_grammars
from backend.engines.llama.pieces import TokenPieces
from backend.engines.llama.worker import Worker

logger = logging.getLogger(__name__)

DEFAULT_MODEL_ID: Final = "gemma-3-270m"

_HONOURED: Final = frozenset(
    {
        "tools",
        "tool_choice",
        "response_format",
        "logprobs",
        "top_logprobs",
        "top_k",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
    }
)
_WHY: Final = {
    "messages.content": "the local model reads text only (no image, audio or file parts)",
    "reasoning_effort": "the local model does not reason before it answers",
    "reasoning_budget_tokens": "the local model does not reason before it answers",
}
# OpenAI's limit.
MAX_TOP_LOGPROBS: Final = 20


class LlamaEngine:
    """The ``llama`` engine: one loaded model, requests served one at a time."""

    def __init__(self, llm: Any, *, model_id: str, n_ctx: int) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self._worker: Worker | None = Worker(llm, llama_cpp, n_ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._n_vocab: int = llm.n_vocab()
        self._model_id = model_id
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
        return self._open_worker().tokenize(text)

    def detokenize(self, tokens: Sequence[int]) -> bytes:
        """The bytes of some tokens (a token may hold part of a UTF-8 character)."""
        self._open_worker()
        pieces = TokenPieces(self._llama_cpp, self._vocab)
        return b"".join(pieces(token) for token in tokens)

    def check(self, request: GenerationRequest) -> None:
        for param in asked_for(request):
            if param not in _HONOURED:
                raise unsupported(param, self.name, _WHY.get(param, ""))
        self._check_tools(request)
        self._check_logprobs(request)
        self._check_logit_bias(request)

    def _check_tools(self, request: GenerationRequest) -> None:
        choice = request.tool_choice
        if request.tools and choice in (None, "auto"):
            raise unsupported(
                "tool_choice",
                self.name,
                'with tools, "auto" (the default) lets the model decide, and this base model '
                'never decides to call one; set tool_choice to "required", to a function, '
                'or to "none"',
            )
        names = [tool.name for tool in request.tools]
        if choice == "required" and not names:
            raise _invalid('tool_choice "required" needs tools', "tool_choice")
        if choice not in (None, "none", "auto", "required") and choice not in names:
            raise _invalid(
                f"tool_choice names {choice!r}, which is not among the tools", "tool_choice"
            )
        if choice in (None, "none", "auto"):
            forced: tuple[ToolSpec, ...] = ()
        elif choice == "required":
            forced = request.tools
        else:
            forced = tuple(tool for tool in request.tools if tool.name == choice)
        check_grammars(forced, request.response_format, self.name)

    def _check_logprobs(self, request: GenerationRequest) -> None:
        top = request.top_logprobs
        if top is None:
            return
        if not request.logprobs:
            raise _invalid("top_logprobs needs logprobs: true", "top_logprobs")
        if not 0 <= top <= MAX_TOP_LOGPROBS:
            raise _invalid(f"top_logprobs must be 0 to {MAX_TOP_LOGPROBS}", "top_logprobs")

    def _check_logit_bias(self, request: GenerationRequest) -> None:
        for token in request.logit_bias or {}:
            try:
                valid = 0 <= int(token) < self._n_vocab
            except ValueError:
                valid = False
            if not valid:
                raise _invalid(
                    f"logit_bias key {token!r} is not a token id of this model "
                    f"(0 to {self._n_vocab - 1})",
                    "logit_bias",
                )

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        if self._closed:
            raise _closed()
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
            raise _closed() from exc
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
            worker, self._worker = self._worker, None
            if worker is not None:
                worker.llm.close()
        logger.info("llama engine closed")

    def _open_worker(self) -> Worker:
        if self._worker is None:
            raise _closed()
        return self._worker

    def _run(
        self,
        request: GenerationRequest,
        cancel: threading.Event,
        emit: Callable[[TokenDelta], None],
    ) -> None:
        with self._lock:
            if cancel.is_set():
                return
            self._open_worker().run(request, cancel, emit)


def _closed() -> EngineError:
    return EngineError("the llama engine is closed", error_type="server_error")


def _invalid(message: str, param: str) -> EngineError:
    return EngineError(
        message, error_type="invalid_request_error", code="invalid_value", param=param
    )

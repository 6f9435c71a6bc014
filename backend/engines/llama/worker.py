"""One generation on the model, run on the engine's worker thread (blocking).

Three shapes of answer, each a loop over ``Llama.generate``:

- text: the transcript ends with ``Assistant:``; stop sequences, whitespace
  trimming, the no-copy rule, logprobs;
- constrained content (``response_format`` json_object / json_schema): the
  same cue, sampled under a grammar; only the client's stop sequences apply;
- a forced tool call (``tool_choice`` required or a named function): the
  transcript ends with ``Assistant calls``; with several tools the name is
  sampled first under a grammar of their names, then the arguments under the
  tool's JSON Schema grammar, streamed as tool-call fragments (stop sequences
  do not apply to arguments, logprobs are for content only).

The prompt is evaluated in chunks (cancellable, reusing the cached prefix)
before ``Llama.generate`` samples; cancellation is checked between tokens.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from backend.engines.base import (
    ChatMessage,
    EngineError,
    FinishReason,
    GenerationRequest,
    TokenDelta,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from backend.engines.llama.grammar import arguments_grammar, content_grammar, names_grammar
from backend.engines.llama.logits import LogitsShaper, NoCopy, token_logprobs
from backend.engines.llama.pieces import TokenPieces
from backend.engines.llama.prompt import (
    CALL_CUE,
    TURN_STOPS,
    AnswerTrimmer,
    answer_prompt,
    build_prompt,
    call_cue,
)
from backend.engines.text import StopMatcher, Utf8Decoder

logger = logging.getLogger(__name__)

# Sampling knobs the OpenAI request has no field for (top_k has one, as an
# extension). Gemma's recommended top_k, plus min_p and a mild repeat penalty:
# a 270M base model otherwise loops on one phrase, especially at temperature 0.
TOP_K: Final = 64
MIN_P: Final = 0.05
REPEAT_PENALTY: Final = 1.1
# When the client sends none: OpenAI's defaults.
DEFAULT_TEMPERATURE: Final = 1.0
DEFAULT_TOP_P: Final = 1.0

# The prompt is evaluated in chunks of this many tokens, so a cancel during a
# long prompt waits for one chunk, not the whole prompt.
PROMPT_CHUNK_TOKENS: Final = 32

_NO_SEED: Final = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: llama.cpp would pick a random seed

Emit = Callable[[TokenDelta], None]


@dataclass(slots=True)
class _Sampled:
    """How a sampling loop went."""

    count: int = 0
    ended: bool = False  # the model ended the answer (end of generation; a grammar complete)
    cancelled: bool = False


class Worker:
    """The model and what the worker thread needs to run one generation on it."""

    def __init__(self, llm: Any, llama_cpp: Any, n_ctx: int) -> None:
        self.llm = llm
        self._llama_cpp = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(llm.model)
        self._n_vocab: int = llm.n_vocab()
        self._n_ctx = n_ctx
        self.pieces = TokenPieces(llama_cpp, self._vocab)

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    def run(self, request: GenerationRequest, cancel: threading.Event, emit: Emit) -> None:
        self.llm.set_seed(_sampler_seed(request.seed))
        if request.tool_choice in (None, "none", "auto"):
            self._answer(request, cancel, emit)
        else:
            self._tool_call(request, cancel, emit)

    # --- answers ---------------------------------------------------------------------

    def _answer(self, request: GenerationRequest, cancel: threading.Event, emit: Emit) -> None:
        prompt, _ = self._fit(request, answer_prompt)
        if not self._eval_prompt(prompt, cancel):
            return
        started = time.perf_counter()
        response_format = request.response_format
        constrained = response_format is not None and response_format.type != "text"
        grammar = None
        no_copy = None
        if constrained and response_format is not None:
            grammar = self._grammar(content_grammar(response_format))
            stops: tuple[str, ...] = request.stop
        else:
            no_copy = NoCopy(self._earlier_answers(request.messages))
            stops = (*TURN_STOPS, *request.stop)
        shaper = LogitsShaper(_bias(request.logit_bias), no_copy)
        decoder = Utf8Decoder()
        matcher = StopMatcher(stops)
        trimmer = AnswerTrimmer()
        logprobs: list[dict[str, Any]] = []
        sampled = _Sampled()
        stopped = False
        budget = self._budget(request, prompt)
        with contextlib.closing(
            self._sample(prompt, request, cancel, budget, sampled, grammar, shaper)
        ) as tokens:
            for token in tokens:
                if request.logprobs:
                    logprobs.append(self._logprobs(token, request.top_logprobs or 0))
                text = trimmer.feed(matcher.feed(decoder.feed(self.pieces(token))))
                if text:
                    emit(TokenDelta(text, logprobs=_content_logprobs(logprobs)))
                    logprobs = []
                if matcher.stopped:
                    stopped = True
                    break
        if sampled.cancelled:
            return
        tail = trimmer.feed(matcher.feed(decoder.flush()) + matcher.flush())
        finish: FinishReason = "stop" if stopped or sampled.ended else "length"
        # The transcript's own turn stops end an answer too; only the client's are named.
        matched = matcher.matched if matcher.matched in request.stop else None
        emit(
            TokenDelta(
                tail,
                logprobs=_content_logprobs(logprobs) if tail else None,
                finish_reason=finish,
                usage=Usage(len(prompt), sampled.count),
                stop_sequence=matched,
            )
        )
        _log_rate(len(prompt), sampled.count, started, finish)

    def _earlier_answers(self, messages: Sequence[ChatMessage]) -> list[list[int]]:
        """The chat's earlier assistant answers as the model would write them."""
        return [
            self.tokenize(" " + message.content.strip())
            for message in messages
            if message.role == "assistant" and message.content.strip()
        ]

    # --- forced tool calls -----------------------------------------------------------

    def _tool_call(self, request: GenerationRequest, cancel: threading.Event, emit: Emit) -> None:
        tools = _callable_tools(request)
        started = time.perf_counter()
        if len(tools) == 1:
            tool = tools[0]
            prompt, _ = self._fit(request, lambda m: build_prompt(m, tools) + call_cue(tool.name))
            first_prompt = len(prompt)
            count = 0
        else:
            # Sample the name first, among the tools' names only.
            prompt, kept = self._fit(request, lambda m: build_prompt(m, tools) + CALL_CUE)
            first_prompt = len(prompt)
            if not self._eval_prompt(prompt, cancel):
                return
            sampled = _Sampled()
            grammar = self._grammar(names_grammar([tool.name for tool in tools]))
            budget = self._budget(request, prompt)
            name = b"".join(
                self.pieces(token)
                for token in self._sample(prompt, request, cancel, budget, sampled, grammar, None)
            ).decode("utf-8", "replace")
            if sampled.cancelled:
                return
            count = sampled.count
            if not sampled.ended:  # max_tokens ran out inside the name
                emit(TokenDelta(finish_reason="length", usage=Usage(first_prompt, count)))
                return
            tool = next(tool for tool in tools if tool.name == name.strip())
            prompt = self.tokenize(build_prompt(kept, tools) + call_cue(tool.name), bos=True)
            if len(prompt) >= self._n_ctx:
                raise _too_long(len(prompt), self._n_ctx)
        if not self._eval_prompt(prompt, cancel):
            return
        emit(
            TokenDelta(
                tool_calls=(
                    ToolCallDelta(
                        0, id="call_" + secrets.token_hex(12), name=tool.name, type="function"
                    ),
                )
            )
        )
        sampled = _Sampled(count=count)
        decoder = Utf8Decoder()
        trimmer = AnswerTrimmer()  # the grammar allows a space after the object
        grammar = self._grammar(arguments_grammar(tool))
        budget = self._budget(request, prompt)
        with contextlib.closing(
            self._sample(prompt, request, cancel, budget, sampled, grammar, None)
        ) as tokens:
            for token in tokens:
                piece = trimmer.feed(decoder.feed(self.pieces(token)))
                if piece:
                    emit(TokenDelta(tool_calls=(ToolCallDelta(0, arguments=piece),)))
        if sampled.cancelled:
            return
        tail = trimmer.feed(decoder.flush())
        finish: FinishReason = "tool_calls" if sampled.ended else "length"
        emit(
            TokenDelta(
                tool_calls=(ToolCallDelta(0, arguments=tail),) if tail else (),
                finish_reason=finish,
                usage=Usage(first_prompt, sampled.count),
            )
        )
        _log_rate(first_prompt, sampled.count, started, finish)

    # --- sampling --------------------------------------------------------------------

    def _sample(
        self,
        prompt: list[int],
        request: GenerationRequest,
        cancel: threading.Event,
        budget: int,
        sampled: _Sampled,
        grammar: Any,
        shaper: LogitsShaper | None,
    ) -> Generator[int, None, None]:
        """Sampled tokens until the model ends, ``sampled.count`` reaches ``budget``,
        or ``cancel`` is set; ``sampled`` says which."""
        processors = [shaper] if shaper else None
        tokens = self.llm.generate(
            prompt,
            temp=DEFAULT_TEMPERATURE if request.temperature is None else request.temperature,
            top_p=DEFAULT_TOP_P if request.top_p is None else request.top_p,
            top_k=TOP_K if request.top_k is None else request.top_k,
            min_p=MIN_P,
            repeat_penalty=REPEAT_PENALTY,
            frequency_penalty=request.frequency_penalty or 0.0,
            presence_penalty=request.presence_penalty or 0.0,
            grammar=grammar,
            logits_processor=processors,
        )
        try:
            if sampled.count >= budget:
                return
            for token in tokens:
                if cancel.is_set():
                    sampled.cancelled = True
                    return
                if self._llama_cpp.llama_vocab_is_eog(self._vocab, token):
                    sampled.ended = True
                    return
                sampled.count += 1
                if shaper is not None:
                    shaper.accept(token)
                yield token
                if sampled.count >= budget:
                    return
        finally:
            tokens.close()

    def _budget(self, request: GenerationRequest, prompt: Sequence[int]) -> int:
        return min(request.max_tokens, self._n_ctx - len(prompt))

    def _grammar(self, text: str) -> Any:
        return self._llama_cpp.LlamaGrammar.from_string(text, verbose=False)

    def _logprobs(self, token: int, top: int) -> dict[str, Any]:
        """The entry of a token just sampled: the context still holds its logits."""
        pointer = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))
        return token_logprobs(logits, token, top, self.pieces)

    # --- the prompt ------------------------------------------------------------------

    def tokenize(self, text: str, *, bos: bool = False) -> list[int]:
        tokens: list[int] = self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=False)
        return tokens

    def _fit(
        self, request: GenerationRequest, render: Callable[[Sequence[ChatMessage]], str]
    ) -> tuple[list[int], list[ChatMessage]]:
        """The prompt, dropping the oldest turns while it leaves too little room to
        answer; and the messages kept."""
        reserve = max(1, min(request.max_tokens, self._n_ctx // 4))
        kept = list(request.messages)
        dropped = 0
        while True:
            tokens = self.tokenize(render(kept), bos=True)
            if len(tokens) + reserve <= self._n_ctx:
                break
            turns = [i for i, m in enumerate(kept) if m.role not in ("system", "developer")]
            if len(turns) <= 1:
                if len(tokens) < self._n_ctx:
                    break
                raise _too_long(len(tokens), self._n_ctx)
            del kept[turns[0]]
            dropped += 1
        if dropped:
            logger.info("llama: dropped the %d oldest messages to fit the context", dropped)
        return tokens, kept

    def _eval_prompt(self, prompt: list[int], cancel: threading.Event) -> bool:
        """Evaluate the whole prompt in chunks, reusing the cached prefix.

        ``Llama.generate`` then finds the entire prompt in its cache and samples
        at once. Returns False when cancelled.
        """
        llm = self.llm
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


def _too_long(tokens: int, n_ctx: int) -> EngineError:
    return EngineError(
        f"the prompt is {tokens} tokens; this model's context is {n_ctx} tokens",
        error_type="invalid_request_error",
        code="context_length_exceeded",
    )


def _callable_tools(request: GenerationRequest) -> tuple[ToolSpec, ...]:
    """The tools a forced call may pick: the named one, or all for "required"."""
    if request.tool_choice == "required":
        return request.tools
    return tuple(tool for tool in request.tools if tool.name == request.tool_choice)


def _bias(logit_bias: Mapping[str, float] | None) -> dict[int, float]:
    return {int(token): float(value) for token, value in (logit_bias or {}).items()}


def _content_logprobs(entries: list[dict[str, Any]]) -> Mapping[str, Any] | None:
    return {"content": entries} if entries else None


def _sampler_seed(seed: int | None) -> int:
    """A 32-bit sampler seed; llama.cpp treats 0xFFFFFFFF as "pick one at random"."""
    if seed is None:
        return secrets.randbits(31)
    value = seed % 2**32
    return 0 if value == _NO_SEED else value


def _log_rate(prompt: int, completion: int, started: float, finish: str) -> None:
    elapsed = time.perf_counter() - started
    logger.debug(
        "llama: %d prompt + %d completion tokens, %.1f tokens/s, finish=%s",
        prompt,
        completion,
        completion / elapsed if elapsed > 0 else 0.0,
        finish,
    )

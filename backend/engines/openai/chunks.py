"""One ``chat.completion.chunk`` → one ``TokenDelta``, for every kind of delta.

A ``ChunkParser`` lives for one stream; it keeps what spans chunks:

- surrogate halves: an upstream may spell one astral character as two
  ``\\uXXXX`` escapes in two chunks, in any text field (``WholeChars`` per
  field, and per tool call for its arguments);
- tool calls: ``id``, ``type`` and ``name`` are passed on with a call's first
  fragment only. Some upstreams (llama-cpp-python's server) repeat them in
  every fragment, and clients that concatenate fragments (the OpenAI SDKs)
  would then see ``get_weatherget_weather``; the first value wins. A call
  whose first fragment has no ``id`` gets one (``call_…``).

Mapped fields:

- reasoning: ``reasoning_content`` (DeepSeek, vLLM, llama.cpp) or ``reasoning``
  (OpenRouter, newer vLLM, Ollama). Upstreams that send both send the same
  text twice; it is passed on once (``reasoning_content`` when both are set);
- a legacy ``function_call`` delta (the pre-tools API) is tool call 0 when the
  chunk carries no ``tool_calls`` (llama-cpp-python sends both);
- ``logprobs`` of the choice are passed on as given;
- usage, with ``completion_tokens_details.reasoning_tokens`` and
  ``prompt_tokens_details.cached_tokens`` when present;
- ``stop_reason`` (vLLM's, and ssechat's own): the stop string that ended the
  answer (a number there is a stop token id, not a string, and is ignored);
- finish_reason: ``stop``, ``length``, ``tool_calls``, ``content_filter`` as
  they are; ``function_call`` → ``tool_calls``; anything else (``eos_token``
  from TGI, ``abort``…) → ``stop``: the answer ended, for a reason we have no
  word for.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

from backend.engines.base import FinishReason, TokenDelta, ToolCallDelta, Usage
from backend.engines.openai.faults import Faults
from backend.engines.text import WholeChars, join_surrogates

logger = logging.getLogger(__name__)

_FINISH: Final[dict[str, FinishReason]] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "tool_calls",
}


@dataclass(frozen=True, slots=True)
class Chunk:
    """What one chunk carries: new material (``delta``; never a finish reason),
    whether it generated anything (for ``max_tokens``), the raw finish reason,
    the stop string the upstream says ended the answer, and usage."""

    delta: TokenDelta
    generated: bool
    finish_reason: str | None
    usage: Usage | None
    stop_sequence: str | None = None


@dataclass(slots=True)
class _Call:
    named: bool
    arguments: WholeChars = field(default_factory=WholeChars)


class ChunkParser:
    """Parses the chunks of one stream, in order."""

    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._content = WholeChars()
        self._reasoning = WholeChars()
        self._refusal = WholeChars()
        self._calls: dict[int, _Call] = {}

    def parse(self, data: str, event: str) -> Chunk:
        try:
            obj = json.loads(data)
        except ValueError:
            raise self._faults.not_json(data) from None
        if not isinstance(obj, dict):
            raise self._faults.malformed_chunk(data)
        if "error" in obj or obj.get("object") == "error" or event == "error":
            # vLLM, our own backend and others report late failures in-band.
            raise self._faults.in_band(obj, data)
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise self._faults.malformed_chunk(data)
        usage = _usage(obj.get("usage"))
        # We never ask for n > 1, so choice 0 is the answer; an empty list is
        # the include_usage chunk.
        for choice in choices:
            if not isinstance(choice, dict):
                raise self._faults.malformed_chunk(data)
            if choice.get("index", 0) == 0:
                return self._choice(choice, usage, data)
        return Chunk(TokenDelta(), False, None, usage)

    def flush(self) -> TokenDelta:
        """Held-back surrogate halves at the end of the stream (each becomes U+FFFD)."""
        return TokenDelta(
            text=self._content.flush(),
            reasoning=self._reasoning.flush(),
            refusal=self._refusal.flush(),
            tool_calls=tuple(
                ToolCallDelta(index, arguments=tail)
                for index, call in self._calls.items()
                if (tail := call.arguments.flush())
            ),
        )

    def _choice(self, choice: dict[str, Any], usage: Usage | None, data: str) -> Chunk:
        delta = choice.get("delta") or {}
        if not isinstance(delta, dict):
            raise self._faults.malformed_chunk(data)
        content = self._text(delta, "content", data)
        reasoning = self._text(delta, "reasoning_content", data) or self._text(
            delta, "reasoning", data
        )
        refusal = self._text(delta, "refusal", data)
        raw_calls = delta.get("tool_calls")
        if raw_calls is None and delta.get("function_call") is not None:
            raw_calls = [{"index": 0, "function": delta["function_call"]}]
        calls, called = self._tool_calls(raw_calls, data)
        logprobs = choice.get("logprobs")
        if logprobs is not None and not isinstance(logprobs, dict):
            raise self._faults.malformed_chunk(data)
        raw_finish = choice.get("finish_reason")
        stop_reason = choice.get("stop_reason")
        return Chunk(
            TokenDelta(
                text=self._content.feed(content),
                reasoning=self._reasoning.feed(reasoning),
                refusal=self._refusal.feed(refusal),
                tool_calls=calls,
                logprobs=logprobs or None,
            ),
            generated=bool(content or reasoning or refusal or called),
            finish_reason=str(raw_finish) if raw_finish else None,
            usage=usage,
            stop_sequence=stop_reason if isinstance(stop_reason, str) and stop_reason else None,
        )

    def _text(self, delta: dict[str, Any], key: str, data: str) -> str:
        value = delta.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self._faults.malformed_chunk(data)
        return value

    def _tool_calls(self, raw: object, data: str) -> tuple[tuple[ToolCallDelta, ...], bool]:
        """The fragments to pass on, and whether any carried new material."""
        if raw is None:
            return (), False
        if not isinstance(raw, list):
            raise self._faults.malformed_chunk(data)
        out: list[ToolCallDelta] = []
        generated = False
        for position, item in enumerate(raw):
            if not isinstance(item, dict):
                raise self._faults.malformed_chunk(data)
            index = item.get("index", position)
            function = item.get("function") or {}
            if not isinstance(index, int) or not isinstance(function, dict):
                raise self._faults.malformed_chunk(data)
            name = self._text(function, "name", data)
            arguments = self._text(function, "arguments", data)
            call_id = self._text(item, "id", data)
            call = self._calls.get(index)
            if call is None:
                call = self._calls[index] = _Call(named=bool(name))
                generated = True
                out.append(
                    ToolCallDelta(
                        index,
                        id=call_id or "call_" + secrets.token_hex(12),
                        name=join_surrogates(name) or None,
                        arguments=call.arguments.feed(arguments),
                        type="function",
                    )
                )
                continue
            # A later fragment: only what is new. A name is new only if the first
            # fragment had none; a repeated id or name is dropped.
            new_name = None
            if name and not call.named:
                call.named = True
                new_name = join_surrogates(name)
            piece = call.arguments.feed(arguments)
            generated = generated or bool(arguments or new_name)
            if piece or new_name:
                out.append(ToolCallDelta(index, name=new_name, arguments=piece))
        return tuple(out), generated


def _usage(raw: object) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens")
    completion = raw.get("completion_tokens")
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        reasoning_tokens=_detail(raw, "completion_tokens_details", "reasoning_tokens"),
        cached_tokens=_detail(raw, "prompt_tokens_details", "cached_tokens"),
    )


def _detail(raw: dict[str, Any], group: str, key: str) -> int | None:
    details = raw.get(group)
    if not isinstance(details, dict):
        return None
    value = details.get(key)
    return value if isinstance(value, int) else None


def finish_reason(raw: str | None) -> FinishReason:
    """Map the upstream's reason onto ours; [DONE] without a reason counts as "stop"."""
    if raw is None:
        return "stop"
    mapped = _FINISH.get(raw)
    if mapped is None:
        logger.info("upstream finish_reason %r has no counterpart; reporting 'stop'", raw)
        return "stop"
    return mapped

"""The Chat Completions renderer: engine deltas into ``chat.completion.chunk``
payloads (streamed) or one ``chat.completion`` object (``stream: false``).

``ChatCompletionGeneration`` is the producer the hub runs: it knows the
OpenAI object shapes, not SSE framing. Chunks are built from a pre-rendered
prefix and suffix so a token costs one JSON string escape of its text rather
than a ``json.dumps`` of a whole dict.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from backend.engines.base import EngineError, TokenDelta, Usage
from backend.errors import error_body
from backend.generation.payload import dumps, escape
from backend.hub.base import EndReason, Event, Fragment, HubError, Produced, Template
from backend.sse import DONE

logger = logging.getLogger(__name__)


def new_completion_id() -> str:
    """``chatcmpl-`` + 128 random bits: unguessable, so it can double as a capability."""
    return "chatcmpl-" + secrets.token_hex(16)


def error_payload(
    message: str, error_type: str, code: str | None = None, param: str | None = None
) -> str:
    return dumps(error_body(message, error_type, code, param))


_DONE_EVENT: Event = ("", DONE)
_CONTENT = 0  # the template of content chunks


def hub_error_events(error: HubError) -> Sequence[Event]:
    """In-band rendering of a hub failure: an error chunk, then ``[DONE]``."""
    return [("", error_payload(error.message, error.error_type)), _DONE_EVENT]


class ChatCompletionGeneration:
    """One streamed completion: the ``Generation`` the hub runs."""

    def __init__(
        self,
        *,
        deltas: AsyncIterator[TokenDelta],
        model: str,
        completion_id: str,
        include_usage: bool,
        on_first_token: Callable[[float], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._deltas = deltas
        self._include_usage = include_usage
        self._on_first_token = on_first_token
        self._on_error = on_error
        self._started = time.perf_counter()
        self.completion_id = completion_id
        self.created = int(time.time())
        self.completion_tokens = 0
        self._finished = False
        header = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": model,
            "system_fingerprint": None,
        }
        head = dumps(header)[:-1]  # drop the closing brace, choices follow
        # A content chunk is this template around its JSON-escaped text.
        self._templates = [
            Template(
                "",
                head + ',"choices":[{"index":0,"delta":{"content":',
                '},"logprobs":null,"finish_reason":null}]}',
            )
        ]
        self._head = head

    @property
    def templates(self) -> Sequence[Template]:
        return self._templates

    def _chunk(self, delta: dict[str, Any], finish_reason: str | None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return self._head + ',"choices":[' + dumps(choice) + "]}"

    def _usage_chunk(self, usage: Usage) -> str:
        body = {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        }
        return self._head + ',"choices":[],"usage":' + dumps(body) + "}"

    async def events(self) -> AsyncIterator[Produced]:
        yield "", self._chunk({"role": "assistant", "content": ""}, None)
        final: TokenDelta | None = None
        try:
            async for delta in self._deltas:
                if delta.text:
                    if self.completion_tokens == 0 and self._on_first_token is not None:
                        self._on_first_token(time.perf_counter() - self._started)
                    self.completion_tokens += 1
                    yield Fragment(_CONTENT, escape(delta.text))
                if delta.finish_reason is not None:
                    final = delta
                    break
        except EngineError as error:
            logger.warning("engine error in %s: %s", self.completion_id, error.message)
            if self._on_error is not None:
                self._on_error(error.error_type)
            self._finished = True
            yield "", error_payload(error.message, error.error_type, error.code, error.param)
            yield _DONE_EVENT
            return
        if final is None:
            if self._on_error is not None:
                self._on_error("engine_error")
            self._finished = True
            yield "", error_payload("The engine ended without a finish reason.", "engine_error")
            yield _DONE_EVENT
            return
        self._finished = True
        yield "", self._chunk({}, final.finish_reason)
        if self._include_usage:
            usage = final.usage or Usage(0, self.completion_tokens)
            yield "", self._usage_chunk(usage)
        yield _DONE_EVENT

    def closing_events(self, reason: EndReason, message: str) -> Sequence[Event]:
        if reason == "error":
            return [
                ("", error_payload(f"Generation failed: {message}", "server_error")),
                _DONE_EVENT,
            ]
        if self._finished:
            return [_DONE_EVENT]
        finish = "cancelled" if reason in ("cancelled", "abandoned", "shutdown") else "stop"
        events: list[Event] = [("", self._chunk({}, finish))]
        if self._include_usage:
            prompt = 0
            events.append(("", self._usage_chunk(Usage(prompt, self.completion_tokens))))
        return [*events, _DONE_EVENT]


async def complete(
    deltas: AsyncIterator[TokenDelta], model: str, completion_id: str
) -> dict[str, Any]:
    """A whole ``chat.completion`` object (``stream: false``). Raises ``EngineError``."""
    parts: list[str] = []
    final: TokenDelta | None = None
    async for delta in deltas:
        if delta.text:
            parts.append(delta.text)
        if delta.finish_reason is not None:
            final = delta
            break
    if final is None:
        raise EngineError("The engine ended without a finish reason.")
    usage = final.usage or Usage(0, len(parts))
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(parts), "refusal": None},
                "logprobs": None,
                "finish_reason": final.finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.total_tokens,
        },
    }

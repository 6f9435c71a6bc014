"""OpenAI Chat Completions: ``data:`` chunk JSON, ``data: [DONE]`` last.

Deltas: ``content``, reasoning as ``reasoning_content`` (DeepSeek, older
vLLM) or ``reasoning`` (vLLM now, OpenRouter) — read one, never both, since a
server set to emit both sends the same text twice — ``tool_calls`` fragments
(``index``, with ``id``/``type``/``function.name`` on the first),
``refusal``; ``usage`` in the last chunk; an in-band ``{"error": …}`` then
``[DONE]``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ui.client.dialect import HttpCall, bearer, json_object_or_none, resume_events
from ui.client.errors import opt_str
from ui.client.models import ChatRequest, DialectName, EventError, Parsed, Piece, Usage

__all__ = ["CHAT", "COMPLETIONS_PATH", "DONE", "ChatCompletions", "error_of", "usage_of"]

logger = logging.getLogger(__name__)

COMPLETIONS_PATH = "/v1/chat/completions"
DONE = "[DONE]"


def usage_of(value: object) -> Usage | None:
    """OpenAI usage (``prompt_tokens`` … with ``completion_tokens_details``)."""
    if not isinstance(value, dict):
        return None
    try:
        details = value.get("completion_tokens_details")
        reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
        return Usage(
            prompt_tokens=int(value.get("prompt_tokens") or 0),
            completion_tokens=int(value.get("completion_tokens") or 0),
            total_tokens=int(value.get("total_tokens") or 0),
            reasoning_tokens=None if reasoning is None else int(reasoning),
        )
    except (TypeError, ValueError):
        return None


def error_of(value: object, fallback: str = "the server reported an error") -> EventError:
    fields = value if isinstance(value, dict) else {"message": str(value)}
    return EventError(
        str(fields.get("message") or fallback),
        opt_str(fields.get("type")),
        opt_str(fields.get("code")),
    )


def _reasoning(delta: Mapping[str, Any]) -> object:
    value = delta.get("reasoning_content")
    return value if value is not None else delta.get("reasoning")


def _tool_pieces(calls: object) -> list[Piece]:
    pieces: list[Piece] = []
    if not isinstance(calls, list):
        return pieces
    for position, call in enumerate(calls):
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        index = call.get("index")
        arguments = function.get("arguments")
        pieces.append(
            Piece(
                "tool_call",
                arguments if isinstance(arguments, str) else "",
                index=index if isinstance(index, int) else position,
                tool_id=opt_str(call.get("id")),
                name=opt_str(function.get("name")),
            )
        )
    return pieces


def _message_pieces(part: Mapping[str, Any]) -> list[Piece]:
    """Pieces of a ``delta`` (streamed) or a ``message`` (non-streamed): reasoning first."""
    pieces: list[Piece] = []
    reasoning = _reasoning(part)
    if isinstance(reasoning, str) and reasoning:
        pieces.append(Piece("reasoning", reasoning))
    content = part.get("content")
    if isinstance(content, str) and content:
        pieces.append(Piece("content", content))
    refusal = part.get("refusal")
    if isinstance(refusal, str) and refusal:
        pieces.append(Piece("refusal", refusal))
    pieces.extend(_tool_pieces(part.get("tool_calls")))
    return pieces


class ChatParser:
    def feed(self, event: str, data: str) -> Parsed:
        if data == DONE:
            return Parsed(kind="done", done=True)
        payload = json_object_or_none(data)
        if payload is None:
            logger.warning("ignoring event data that is not a JSON object: %.80r", data)
            return Parsed()
        return _parse_payload(payload, "delta")


def _parse_payload(payload: Mapping[str, Any], part_name: str) -> Parsed:
    if payload.get("error") is not None:
        return Parsed(error=error_of(payload["error"])).settle_kind()
    parsed = Parsed(
        stream_id=payload["id"] if isinstance(payload.get("id"), str) else None,
        model=payload["model"] if isinstance(payload.get("model"), str) else None,
        usage=usage_of(payload.get("usage")),
    )
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        part = choice.get(part_name)
        if isinstance(part, dict):
            parsed.pieces.extend(_message_pieces(part))
        if choice.get("finish_reason"):
            parsed.finish_reason = str(choice["finish_reason"])
    return parsed.settle_kind()


class ChatCompletions:
    name: DialectName = "chat"
    label = "Chat Completions"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return bearer(api_key)

    def start(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        return HttpCall("POST", COMPLETIONS_PATH, json=request.body(stream=stream))

    def resume(self, stream_id: str, last_id: str) -> HttpCall:
        return resume_events(COMPLETIONS_PATH, stream_id, last_id)

    def cancel_path(self, stream_id: str) -> str:
        return f"{COMPLETIONS_PATH}/{stream_id}/cancel"

    def parser(self) -> ChatParser:
        return ChatParser()

    def parse_complete(self, payload: Mapping[str, Any]) -> Parsed:
        return _parse_payload(payload, "message")


CHAT = ChatCompletions()

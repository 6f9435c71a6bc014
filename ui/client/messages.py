"""Anthropic Messages: ``message_start``, content blocks, ``message_delta``, ``message_stop``.

Blocks are numbered by ``index``: ``text`` (``text_delta``), ``thinking``
(``thinking_delta``, then a ``signature_delta`` that carries no text) and
``tool_use`` (id and name in ``content_block_start``, arguments as
``input_json_delta.partial_json``). ``message_delta`` carries the stop
reason and the output token count (input tokens came in
``message_start``). ``event: ping`` is the keep-alive; ``event: error``
ends an Anthropic stream (no ``message_stop`` after it). Auth is
``x-api-key``; ``max_tokens`` is required.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ui.client.chat import error_of
from ui.client.dialect import HttpCall, json_object_or_none, resume_events
from ui.client.errors import ChatClientError, opt_str
from ui.client.models import ChatRequest, DialectName, Parsed, Piece, Usage

__all__ = [
    "ANTHROPIC_VERSION",
    "DEFAULT_MAX_TOKENS",
    "MESSAGES",
    "MESSAGES_PATH",
    "Messages",
    "MessagesParser",
]

MESSAGES_PATH = "/v1/messages"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # required by the dialect; used when the request leaves it open
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_DELTA_TEXT = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "input_json_delta": "partial_json",
}
_DELTA_KIND = {
    "text_delta": "content",
    "thinking_delta": "reasoning",
    "input_json_delta": "tool_call",
}


def usage_of(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    try:
        prompt = int(value.get("input_tokens") or 0)
        completion = int(value.get("output_tokens") or 0)
    except (TypeError, ValueError):
        return None
    return Usage(prompt, completion, prompt + completion)


def finish_of(stop_reason: object) -> str | None:
    if stop_reason is None:
        return None
    return _STOP_REASONS.get(str(stop_reason), str(stop_reason))


class MessagesParser:
    def __init__(self) -> None:
        self._tools: dict[int, int] = {}  # content block index -> tool-call index

    def feed(self, event: str, data: str) -> Parsed:
        payload = json_object_or_none(data)
        if payload is None:
            return Parsed()
        kind = str(payload.get("type") or event)
        if kind == "ping":
            return Parsed(kind="ping")
        if kind == "error":
            return Parsed(error=error_of(payload.get("error") or payload)).settle_kind()
        parsed = Parsed()
        if kind == "message_start":
            message = payload.get("message")
            message = message if isinstance(message, dict) else {}
            parsed.stream_id = opt_str(message.get("id"))
            parsed.model = opt_str(message.get("model"))
            parsed.usage = usage_of(message.get("usage"))
            parsed.kind = "meta"
            return parsed
        block_index = payload.get("index")
        if kind == "content_block_start":
            block = payload.get("content_block")
            block = block if isinstance(block, dict) else {}
            if block.get("type") == "tool_use" and isinstance(block_index, int):
                index = self._tools[block_index] = len(self._tools)
                parsed.pieces.append(
                    Piece(
                        "tool_call",
                        "",
                        index=index,
                        tool_id=opt_str(block.get("id")),
                        name=opt_str(block.get("name")),
                    )
                )
            else:
                text = block.get("text") or block.get("thinking")
                if isinstance(text, str) and text:
                    parsed.pieces.append(
                        Piece("reasoning" if block.get("type") == "thinking" else "content", text)
                    )
        elif kind == "content_block_delta":
            delta = payload.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            delta_type = str(delta.get("type"))
            text = delta.get(_DELTA_TEXT.get(delta_type, ""))
            if delta_type in _DELTA_KIND and isinstance(text, str):
                piece_kind = _DELTA_KIND[delta_type]
                tool = self._tools.get(block_index) if isinstance(block_index, int) else None
                if piece_kind != "tool_call" or tool is not None:
                    parsed.pieces.append(Piece(piece_kind, text, index=tool))  # type: ignore[arg-type]
        elif kind == "message_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict):
                # ssechat ends a cancelled stream with an explicit null stop reason.
                if "stop_reason" in delta and delta["stop_reason"] is None:
                    parsed.finish_reason = "cancelled"
                else:
                    parsed.finish_reason = finish_of(delta.get("stop_reason"))
            parsed.usage = usage_of(payload.get("usage"))
        elif kind == "message_stop":
            return Parsed(kind="done", done=True)
        return parsed.settle_kind()


class Messages:
    name: DialectName = "messages"
    label = "Messages"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def start(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        if request.seed is not None:
            raise ChatClientError("the Messages API has no seed field")
        system, messages = request.split_system()
        body: dict[str, Any] = {
            "messages": messages,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "stream": stream,
        }
        if system:
            body["system"] = "\n\n".join(system)
        body.update(request.sampling())
        return HttpCall("POST", MESSAGES_PATH, json=body)

    def resume(self, stream_id: str, last_id: str) -> HttpCall:
        return resume_events(MESSAGES_PATH, stream_id, last_id)

    def cancel_path(self, stream_id: str) -> str:
        return f"{MESSAGES_PATH}/{stream_id}/cancel"

    def parser(self) -> MessagesParser:
        return MessagesParser()

    def parse_complete(self, payload: Mapping[str, Any]) -> Parsed:
        if payload.get("type") == "error":
            return Parsed(error=error_of(payload.get("error") or {})).settle_kind()
        parsed = Parsed(
            stream_id=opt_str(payload.get("id")),
            model=opt_str(payload.get("model")),
            usage=usage_of(payload.get("usage")),
            finish_reason=finish_of(payload.get("stop_reason")),
            done=True,
        )
        tools = 0
        for block in payload.get("content") or ():
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "text" and block.get("text"):
                parsed.pieces.append(Piece("content", str(block["text"])))
            elif kind == "thinking" and block.get("thinking"):
                parsed.pieces.append(Piece("reasoning", str(block["thinking"])))
            elif kind == "tool_use":
                parsed.pieces.append(
                    Piece(
                        "tool_call",
                        json.dumps(block.get("input") or {}),
                        index=tools,
                        tool_id=opt_str(block.get("id")),
                        name=opt_str(block.get("name")),
                    )
                )
                tools += 1
        return parsed.settle_kind()


MESSAGES = Messages()

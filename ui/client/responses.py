"""OpenAI Responses API: typed events, ``event:`` = the payload's ``type``.

Every event carries ``sequence_number`` (from 0); the SSE id is
``sequence_number + 1``, so resuming with ``starting_after=N`` (N = the last
sequence number seen) equals ``Last-Event-ID: N+1``. The response id is in
``response.created`` (and the ``X-Stream-Id`` header). Text arrives in
``*.delta`` events; the ``*.done`` events repeat it whole and are not added
again. One terminal event: ``response.completed``, ``response.incomplete``
(``incomplete_details.reason``) or ``response.failed`` (an ``error`` event
may come first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ui.client.chat import error_of
from ui.client.dialect import HttpCall, bearer, json_object_or_none
from ui.client.errors import ChatClientError, opt_str
from ui.client.models import ChatRequest, DialectName, Parsed, Piece, Usage

__all__ = ["RESPONSES", "RESPONSES_PATH", "Responses", "ResponsesParser", "usage_of"]

RESPONSES_PATH = "/v1/responses"
_TEXT_DELTAS = {
    "response.output_text.delta": "content",
    "response.refusal.delta": "refusal",
    "response.reasoning_text.delta": "reasoning",
    "response.reasoning_summary_text.delta": "reasoning",
}
_INCOMPLETE = {"max_output_tokens": "length", "content_filter": "content_filter"}


def usage_of(value: object) -> Usage | None:
    """Responses usage (``input_tokens``, ``output_tokens``, ``output_tokens_details``)."""
    if not isinstance(value, dict):
        return None
    try:
        details = value.get("output_tokens_details")
        reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
        prompt = int(value.get("input_tokens") or 0)
        completion = int(value.get("output_tokens") or 0)
        return Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=int(value.get("total_tokens") or prompt + completion),
            reasoning_tokens=None if reasoning is None else int(reasoning),
        )
    except (TypeError, ValueError):
        return None


def _finish(response: Mapping[str, Any], terminal: str, has_tools: bool) -> str:
    status = response.get("status")
    if status == "cancelled":
        return "cancelled"
    if terminal == "response.incomplete" or status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE.get(str(reason), str(reason or "length"))
    return "tool_calls" if has_tools else "stop"


def _call_piece(item: Mapping[str, Any], index: int) -> Piece:
    """A ``function_call`` output item as the first piece of call ``index``."""
    arguments = item.get("arguments")
    return Piece(
        "tool_call",
        arguments if isinstance(arguments, str) else "",
        index=index,
        tool_id=opt_str(item.get("call_id") or item.get("id")),
        name=opt_str(item.get("name")),
    )


class ResponsesParser:
    def __init__(self) -> None:
        self._tools: dict[str, int] = {}  # item id / output index -> tool-call index

    def _tool_index(self, payload: Mapping[str, Any]) -> int | None:
        for key in (payload.get("item_id"), payload.get("output_index")):
            if key is not None and str(key) in self._tools:
                return self._tools[str(key)]
        return None

    def feed(self, event: str, data: str) -> Parsed:
        payload = json_object_or_none(data)
        if payload is None:
            return Parsed()
        kind = str(payload.get("type") or event)
        if kind == "error":
            return Parsed(error=error_of(payload)).settle_kind()
        response = payload.get("response")
        response = response if isinstance(response, dict) else {}
        parsed = Parsed(
            stream_id=opt_str(response.get("id")),
            model=opt_str(response.get("model")),
        )
        if kind in _TEXT_DELTAS:
            delta = payload.get("delta")
            if isinstance(delta, str) and delta:
                parsed.pieces.append(Piece(_TEXT_DELTAS[kind], delta))  # type: ignore[arg-type]
        elif kind == "response.output_item.added":
            item = payload.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                index = len(set(self._tools.values()))
                for key in (item.get("id"), payload.get("output_index")):
                    if key is not None:
                        self._tools[str(key)] = index
                parsed.pieces.append(_call_piece(item, index))
        elif kind == "response.function_call_arguments.delta":
            delta = payload.get("delta")
            tool = self._tool_index(payload)
            if isinstance(delta, str) and tool is not None:
                parsed.pieces.append(Piece("tool_call", delta, index=tool))
        elif kind == "response.failed":
            error = response.get("error")
            parsed.error = error_of(error or {}, "the response failed")
            parsed.done = True
        elif kind in ("response.completed", "response.incomplete"):
            parsed.usage = usage_of(response.get("usage"))
            parsed.finish_reason = _finish(response, kind, bool(self._tools))
            parsed.done = True
        parsed.settle_kind()
        if parsed.done and parsed.error is None:
            parsed.kind = "finish"
        return parsed


class Responses:
    name: DialectName = "responses"
    label = "Responses"

    def auth_headers(self, api_key: str | None) -> dict[str, str]:
        return bearer(api_key)

    def start(self, request: ChatRequest, *, stream: bool) -> HttpCall:
        if request.seed is not None:
            raise ChatClientError("the Responses API has no seed field")
        instructions, messages = request.split_system()
        body: dict[str, Any] = {"input": messages, "stream": stream}
        if instructions:
            body["instructions"] = "\n\n".join(instructions)
        if request.max_tokens is not None:
            body["max_output_tokens"] = request.max_tokens
        body.update(request.sampling())
        return HttpCall("POST", RESPONSES_PATH, json=body)

    def resume(self, stream_id: str, last_id: str) -> HttpCall:
        params = {"stream": "true"}
        if last_id.isdigit() and int(last_id) > 0:
            params["starting_after"] = str(int(last_id) - 1)  # sequence numbers start at 0
        return HttpCall("GET", f"{RESPONSES_PATH}/{stream_id}", params=params)

    def cancel_path(self, stream_id: str) -> str:
        return f"{RESPONSES_PATH}/{stream_id}/cancel"

    def parser(self) -> ResponsesParser:
        return ResponsesParser()

    def parse_complete(self, payload: Mapping[str, Any]) -> Parsed:
        if payload.get("error") and payload.get("status") == "failed":
            return Parsed(error=error_of(payload["error"])).settle_kind()
        parsed = Parsed(
            stream_id=opt_str(payload.get("id")),
            model=opt_str(payload.get("model")),
            usage=usage_of(payload.get("usage")),
            done=True,
        )
        tools = 0
        for item in payload.get("output") or ():
            if not isinstance(item, dict):
                continue
            kind = item.get("type")
            if kind == "function_call":
                parsed.pieces.append(_call_piece(item, tools))
                tools += 1
                continue
            parts = list(item.get("content") or ())
            if kind == "reasoning":
                parts += list(item.get("summary") or ())
            for part in parts:
                if not isinstance(part, dict):
                    continue
                text = part.get("text") if part.get("type") != "refusal" else part.get("refusal")
                if not isinstance(text, str) or not text:
                    continue
                if kind == "reasoning":
                    parsed.pieces.append(Piece("reasoning", text))
                elif part.get("type") == "refusal":
                    parsed.pieces.append(Piece("refusal", text))
                else:
                    parsed.pieces.append(Piece("content", text))
        parsed.finish_reason = _finish(payload, "", tools > 0)
        return parsed.settle_kind()


RESPONSES = Responses()

"""The Chat Completions renderer: engine deltas into ``chat.completion.chunk``
payloads (streamed) or one ``chat.completion`` object (``stream: false``).

``ChatCompletionGeneration`` is the producer the hub runs: it knows the
OpenAI object shapes, not SSE framing. The chunks a stream is made of by the
hundred share a template (a pre-rendered prefix and suffix around one JSON
string): plain content (template 0, the hot path: one string escape per
token), and, added the first time they occur, reasoning text and each tool
call's argument pieces. Anything else (a tool call's first fragment with its
id and name, a refusal, logprobs, several kinds in one delta) is a whole
chunk built from a dict.

Shapes are OpenAI's: ``delta.tool_calls[{index, id, type, function: {name,
arguments}}]`` with id, type and name on a call's first fragment only,
``finish_reason: "tool_calls"``, ``delta.refusal``, choice-level ``logprobs``,
and ``usage`` with ``completion_tokens_details.reasoning_tokens`` and
``prompt_tokens_details.cached_tokens`` when the engine knows them.
Reasoning text is not in OpenAI's schema: it goes out as
``reasoning_content`` (DeepSeek, older vLLM), ``reasoning`` (vLLM now,
OpenRouter) or both, as ``reasoning_field`` says. When one of the request's
``stop`` sequences ended the answer and the engine says which, the final
choice names it in ``stop_reason``, as vLLM does (absent otherwise).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Any

from backend.config import ReasoningField
from backend.engines.base import EngineError, TokenDelta, ToolCallDelta, Usage
from backend.errors import error_body
from backend.generation.answer import Answer, collect
from backend.generation.payload import dumps, escape
from backend.hub.base import EndReason, Event, Fragment, HubError, Produced, Template
from backend.sse import DONE

logger = logging.getLogger(__name__)

DEFAULT_REASONING_FIELD: ReasoningField = "reasoning_content"


def new_completion_id() -> str:
    """``chatcmpl-`` + 128 random bits: unguessable, so it can double as a capability."""
    return "chatcmpl-" + secrets.token_hex(16)


def error_payload(
    message: str, error_type: str, code: str | None = None, param: str | None = None
) -> str:
    return dumps(error_body(message, error_type, code, param))


_DONE_EVENT: Event = ("", DONE)
_CONTENT = 0  # the template of content chunks
_CHOICE_TAIL = '},"logprobs":null,"finish_reason":null}]}'


def hub_error_events(error: HubError) -> Sequence[Event]:
    """In-band rendering of a hub failure: an error chunk, then ``[DONE]``."""
    return [("", error_payload(error.message, error.error_type)), _DONE_EVENT]


def reasoning_fields(setting: ReasoningField) -> tuple[str, ...]:
    """The message/delta keys reasoning text goes out under."""
    if setting == "both":
        return ("reasoning_content", "reasoning")
    return (setting,)


def usage_body(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object; the details only when the engine knows them."""
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.reasoning_tokens is not None:
        body["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    if usage.cached_tokens is not None:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return body


def _tool_call_item(fragment: ToolCallDelta) -> dict[str, Any]:
    item: dict[str, Any] = {"index": fragment.index}
    if fragment.id is not None:
        item["id"] = fragment.id
    if fragment.type is not None or fragment.id is not None:
        item["type"] = fragment.type or "function"
    function: dict[str, Any] = {}
    if fragment.name is not None:
        function["name"] = fragment.name
    function["arguments"] = fragment.arguments
    item["function"] = function
    return item


class ChatCompletionGeneration:
    """One streamed completion: the ``Generation`` the hub runs."""

    def __init__(
        self,
        *,
        deltas: AsyncGenerator[TokenDelta, None],
        model: str,
        completion_id: str,
        include_usage: bool,
        reasoning_field: ReasoningField = DEFAULT_REASONING_FIELD,
    ) -> None:
        self._deltas = deltas
        self._include_usage = include_usage
        self._reasoning_fields = reasoning_fields(reasoning_field)
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
        self._head = head
        self._delta_head = head + ',"choices":[{"index":0,"delta":{'
        # A content chunk is this template around its JSON-escaped text.
        self._templates = [Template("", self._delta_head + '"content":', _CHOICE_TAIL)]
        self._reasoning_template: int | None = None
        self._argument_templates: dict[int, int] = {}  # tool-call index -> template

    @property
    def templates(self) -> Sequence[Template]:
        return self._templates

    def _template(self, prefix: str, suffix: str) -> int:
        self._templates.append(Template("", prefix, suffix))
        return len(self._templates) - 1

    def _chunk(
        self, delta: dict[str, Any], finish_reason: str | None, stop_sequence: str | None = None
    ) -> str:
        choice: dict[str, Any] = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": finish_reason,
        }
        if stop_sequence is not None:
            choice["stop_reason"] = stop_sequence
        return self._head + ',"choices":[' + dumps(choice) + "]}"

    def _usage_chunk(self, usage: Usage) -> str:
        return self._head + ',"choices":[],"usage":' + dumps(usage_body(usage)) + "}"

    def _render(self, delta: TokenDelta) -> Iterator[Produced]:
        """A delta that is not plain content: a template where one fits, else a whole chunk."""
        only_reasoning = not (delta.text or delta.tool_calls or delta.refusal or delta.logprobs)
        if only_reasoning and delta.reasoning and len(self._reasoning_fields) == 1:
            if self._reasoning_template is None:
                prefix = f'{self._delta_head}"{self._reasoning_fields[0]}":'
                self._reasoning_template = self._template(prefix, _CHOICE_TAIL)
            yield Fragment(self._reasoning_template, escape(delta.reasoning))
            return
        if (
            len(delta.tool_calls) == 1
            and not (delta.text or delta.reasoning or delta.refusal or delta.logprobs)
            and delta.tool_calls[0].id is None
            and delta.tool_calls[0].name is None
            and delta.tool_calls[0].arguments
        ):
            fragment = delta.tool_calls[0]
            template = self._argument_templates.get(fragment.index)
            if template is None:
                prefix = (
                    f'{self._delta_head}"tool_calls":[{{"index":{fragment.index},'
                    '"function":{"arguments":'
                )
                template = self._template(prefix, "}}]" + _CHOICE_TAIL)
                self._argument_templates[fragment.index] = template
            yield Fragment(template, escape(fragment.arguments))
            return
        body: dict[str, Any] = {}
        if delta.text:
            body["content"] = delta.text
        if delta.reasoning:
            for name in self._reasoning_fields:
                body[name] = delta.reasoning
        if delta.refusal:
            body["refusal"] = delta.refusal
        if delta.tool_calls:
            body["tool_calls"] = [_tool_call_item(fragment) for fragment in delta.tool_calls]
        if not body and delta.logprobs is None:
            return
        choice = {
            "index": 0,
            "delta": body,
            "logprobs": delta.logprobs,
            "finish_reason": None,
        }
        yield "", self._head + ',"choices":[' + dumps(choice) + "]}"

    def _first_token(self) -> None:
        self.completion_tokens += 1

    async def events(self) -> AsyncGenerator[Produced, None]:
        yield "", self._chunk({"role": "assistant", "content": ""}, None)
        final: TokenDelta | None = None
        try:
            async for delta in self._deltas:
                text = delta.text
                if text and not (
                    delta.reasoning or delta.tool_calls or delta.refusal or delta.logprobs
                ):
                    # The hot path (plain content), inline: no call beyond the escape.
                    self.completion_tokens += 1
                    yield Fragment(_CONTENT, escape(text))
                elif text or delta.reasoning or delta.tool_calls or delta.refusal:
                    self._first_token()
                    for item in self._render(delta):
                        yield item
                elif delta.logprobs is not None:
                    for item in self._render(delta):
                        yield item
                if delta.finish_reason is not None:
                    final = delta
                    break
        except EngineError as error:
            logger.warning("engine error in %s: %s", self.completion_id, error.message)
            self._finished = True
            yield "", error_payload(error.message, error.error_type, error.code, error.param)
            yield _DONE_EVENT
            return
        if final is None:
            self._finished = True
            yield "", error_payload("The engine ended without a finish reason.", "engine_error")
            yield _DONE_EVENT
            return
        self._finished = True
        yield "", self._chunk({}, final.finish_reason, final.stop_sequence)
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


def completion_message(answer: Answer, reasoning_field: ReasoningField) -> dict[str, Any]:
    """The ``message`` of a whole completion. ``content`` is null when the answer is
    tool calls or a refusal without text, as OpenAI sends it."""
    text = "".join(answer.text)
    refusal = "".join(answer.refusal)
    calls = answer.tool_calls
    message: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not (calls or refusal) else None,
        "refusal": refusal or None,
    }
    if answer.reasoning:
        reasoning = "".join(answer.reasoning)
        for name in reasoning_fields(reasoning_field):
            message[name] = reasoning
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.joined_arguments},
            }
            for call in calls
        ]
    return message


async def complete(
    deltas: AsyncGenerator[TokenDelta, None],
    model: str,
    completion_id: str,
    reasoning_field: ReasoningField = DEFAULT_REASONING_FIELD,
) -> dict[str, Any]:
    """A whole ``chat.completion`` object (``stream: false``). Raises ``EngineError``."""
    answer = await collect(deltas)
    usage = answer.usage or Usage(0, answer.deltas)
    choice: dict[str, Any] = {
        "index": 0,
        "message": completion_message(answer, reasoning_field),
        "logprobs": answer.logprobs,
        "finish_reason": answer.finish_reason,
    }
    if answer.stop_sequence is not None:
        choice["stop_reason"] = answer.stop_sequence
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
        "choices": [choice],
        "usage": usage_body(usage),
    }

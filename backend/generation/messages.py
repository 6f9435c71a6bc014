"""The Anthropic Messages renderer: engine deltas into ``message_*`` and
``content_block_*`` events.

``message_start``; then content blocks, each ``content_block_start``,
deltas, ``content_block_stop``: ``thinking`` (``thinking_delta``, then one
``signature_delta``), ``text`` (``text_delta``), ``tool_use``
(``input_json_delta``); then ``message_delta`` (stop reason, usage) and
``message_stop``. An engine failure is an ``event: error``, which ends an
Anthropic stream (no ``message_stop`` after it).

Stopped early by the hub: a cancel, or every reader leaving, closes the open
blocks and ends with ``message_delta`` whose ``stop_reason`` is null (the
answer did not stop by itself; Anthropic has no reason for it), then
``message_stop``; a shutdown or a failure ends with ``event: error``
(``overloaded_error``: retry; ``api_error``).

Usage: the input tokens are known only at the end (engines report them with
the final delta), so ``message_start`` says 0 and ``message_delta`` carries
``input_tokens`` too (the SDKs take the later value).

Thinking blocks carry a signature so clients can hand them back: ours is a
digest of the thinking text (no engine signs its reasoning), and thinking
blocks given back are not sent to the engine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from backend.engines.base import EngineError, TokenDelta, ToolCallDelta, Usage
from backend.errors import anthropic_error_event
from backend.generation.answer import run_through
from backend.generation.payload import dumps, escape
from backend.hub.base import EndReason, Event, Fragment, HubError, Produced, Template

logger = logging.getLogger(__name__)

BlockType = Literal["text", "thinking", "tool_use"]
_DELTA_FIELD: dict[BlockType, tuple[str, str]] = {
    "text": ("text_delta", "text"),
    "thinking": ("thinking_delta", "thinking"),
    "tool_use": ("input_json_delta", "partial_json"),
}
_STOP_REASONS: dict[str, str | None] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "cancelled": None,
}
_MESSAGE_STOP: Event = ("message_stop", '{"type":"message_stop"}')
PING_EVENT: Event = ("ping", '{"type":"ping"}')


def new_message_id() -> str:
    """``msg_`` + 128 random bits: unguessable, so it can double as a capability."""
    return "msg_" + secrets.token_hex(16)


def signature_of(thinking: str) -> str:
    return base64.b64encode(hashlib.sha256(thinking.encode("utf-8", "replace")).digest()).decode()


def usage_body(usage: Usage) -> dict[str, Any]:
    """Anthropic's usage: input tokens exclude cache reads, which are counted apart."""
    body: dict[str, Any] = {
        "input_tokens": usage.prompt_tokens - (usage.cached_tokens or 0),
        "output_tokens": usage.completion_tokens,
    }
    if usage.cached_tokens is not None:
        body["cache_read_input_tokens"] = usage.cached_tokens
    return body


def _error(message: str, error_type: str) -> Event:
    return "error", dumps(anthropic_error_event(message, error_type))


def hub_error_events(error: HubError) -> Sequence[Event]:
    """A hub failure mid-stream: ``event: error``, which ends the stream."""
    return [_error(error.message, error.error_type)]


@dataclass
class _Block:
    index: int
    type: BlockType
    template: int
    pieces: list[str] = field(default_factory=list)
    tool_id: str = ""
    name: str = ""

    def start(self) -> Event:
        block: dict[str, Any]
        if self.type == "text":
            block = {"type": "text", "text": ""}
        elif self.type == "thinking":
            block = {"type": "thinking", "thinking": "", "signature": ""}
        else:
            block = {"type": "tool_use", "id": self.tool_id, "name": self.name, "input": {}}
        body = {"type": "content_block_start", "index": self.index, "content_block": block}
        return "content_block_start", dumps(body)

    def stop(self) -> list[Event]:
        events: list[Event] = []
        if self.type == "thinking":
            delta = {"type": "signature_delta", "signature": signature_of("".join(self.pieces))}
            body = {"type": "content_block_delta", "index": self.index, "delta": delta}
            events.append(("content_block_delta", dumps(body)))
        stop = {"type": "content_block_stop", "index": self.index}
        events.append(("content_block_stop", dumps(stop)))
        return events

    def content(self) -> dict[str, Any]:
        """The block as it stands in a whole Message object."""
        text = "".join(self.pieces)
        if self.type == "text":
            return {"type": "text", "text": text}
        if self.type == "thinking":
            return {"type": "thinking", "thinking": text, "signature": signature_of(text)}
        try:
            arguments = json.loads(text) if text else {}
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            # ``input`` must be an object; keep what the model wrote rather than lose it.
            arguments = {"_unparsed_arguments": text}
        return {"type": "tool_use", "id": self.tool_id, "name": self.name, "input": arguments}


class MessagesGeneration:
    """One Anthropic message: the ``Generation`` the hub runs, or a non-streamed run."""

    def __init__(
        self,
        *,
        deltas: AsyncGenerator[TokenDelta, None],
        model: str,
        message_id: str,
    ) -> None:
        self._deltas = deltas
        self._model = model
        self.message_id = message_id
        self._templates: list[Template] = []
        self._blocks: list[_Block] = []
        self._open: list[_Block] = []
        self._tools: dict[int, _Block] = {}  # tool-call index -> its open block
        self._text_block: _Block | None = None  # the open text block, if last
        self._begun = False
        self._finished = False
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.stop_sequence: str | None = None
        self.usage: Usage | None = None
        self.error: EngineError | None = None

    @property
    def templates(self) -> Sequence[Template]:
        return self._templates

    @property
    def started(self) -> bool:
        return self._begun

    def message(self) -> dict[str, Any]:
        """The whole Message object (``stream: false``), as the blocks stand."""
        usage = self.usage or Usage(0, self.output_tokens)
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [block.content() for block in self._blocks],
            "stop_reason": self.stop_reason,
            "stop_sequence": self.stop_sequence,
            "usage": usage_body(usage),
        }

    def _start_event(self) -> Event:
        message: dict[str, Any] = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self._model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return "message_start", dumps({"type": "message_start", "message": message})

    # -- blocks ---------------------------------------------------------------------------------
    def _close(self, keep_tools: bool = False) -> list[Event]:
        closing = [b for b in self._open if not (keep_tools and b.type == "tool_use")]
        events = [event for block in closing for event in block.stop()]
        self._open = [b for b in self._open if b not in closing]
        if not keep_tools:
            self._tools = {}
        return events

    def _open_block(
        self, block_type: BlockType, tool_id: str = "", name: str = ""
    ) -> tuple[list[Event], _Block]:
        index = len(self._blocks)
        delta_type, key = _DELTA_FIELD[block_type]
        head = dumps({"type": "content_block_delta", "index": index})[:-1]
        self._templates.append(
            Template(
                "content_block_delta",
                f'{head},"delta":{{"type":"{delta_type}","{key}":',
                "}}",
            )
        )
        block = _Block(index, block_type, len(self._templates) - 1, tool_id=tool_id, name=name)
        self._blocks.append(block)
        self._open.append(block)
        return [block.start()], block

    def _block(self, block_type: Literal["text", "thinking"]) -> tuple[list[Event], _Block]:
        current = self._open[-1] if self._open else None
        if current is not None and current.type == block_type:
            return [], current
        events = self._close()
        opening, block = self._open_block(block_type)
        return [*events, *opening], block

    def _tool(self, call: ToolCallDelta) -> tuple[list[Event], _Block]:
        block = self._tools.get(call.index)
        if block is not None:
            return [], block
        events = self._close(keep_tools=True)
        opening, block = self._open_block(
            "tool_use",
            tool_id=call.id or "toolu_" + secrets.token_hex(12),
            name=call.name or "",
        )
        self._tools[call.index] = block
        return [*events, *opening], block

    def _delta_events(self, delta: TokenDelta) -> list[Produced]:
        out: list[Produced] = []
        for block_type, text in (
            ("thinking", delta.reasoning),
            ("text", delta.refusal),  # Anthropic has no refusal blocks: refusals are text
            ("text", delta.text),
        ):
            if text:
                events, block = self._block(block_type)  # type: ignore[arg-type]
                out.extend(events)
                block.pieces.append(text)
                out.append(Fragment(block.template, escape(text)))
        for call in delta.tool_calls:
            events, block = self._tool(call)
            out.extend(events)
            if call.name and not block.name:
                block.name = call.name
            if call.arguments:
                block.pieces.append(call.arguments)
                out.append(Fragment(block.template, escape(call.arguments)))
        return out

    # -- ends -----------------------------------------------------------------------------------
    def _message_end(
        self, stop_reason: str | None, stop_sequence: str | None, usage: Usage
    ) -> list[Event]:
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
            "usage": usage_body(usage),
        }
        return [("message_delta", dumps(delta)), _MESSAGE_STOP]

    def _fail(self, error: EngineError) -> list[Event]:
        logger.warning("engine error in %s: %s", self.message_id, error.message)
        self.error = error
        return [_error(error.message, error.error_type)]

    async def events(self) -> AsyncGenerator[Produced, None]:
        self._begun = True
        yield self._start_event()
        final: TokenDelta | None = None
        try:
            async for delta in self._deltas:
                text_block = self._text_block
                if (
                    text_block is not None
                    and delta.text
                    and not (delta.reasoning or delta.refusal or delta.tool_calls)
                ):
                    # The hot path: more text for the text block that is open.
                    self.output_tokens += 1
                    text_block.pieces.append(delta.text)
                    yield Fragment(text_block.template, escape(delta.text))
                elif delta.text or delta.reasoning or delta.refusal or delta.tool_calls:
                    self.output_tokens += 1
                    for item in self._delta_events(delta):
                        yield item
                    last = self._open[-1] if self._open else None
                    self._text_block = last if last is not None and last.type == "text" else None
                if delta.finish_reason is not None:
                    final = delta
                    break
        except EngineError as error:
            self._finished = True
            for event in self._fail(error):
                yield event
            return
        self._finished = True
        if final is None:
            for event in self._fail(EngineError("The engine ended without a finish reason.")):
                yield event
            return
        if final.finish_reason == "error":
            for event in self._fail(EngineError("The engine reported an error.")):
                yield event
            return
        self.usage = final.usage or Usage(0, self.output_tokens)
        self.stop_reason = _STOP_REASONS.get(final.finish_reason or "stop", "end_turn")
        if self.stop_reason == "end_turn" and final.stop_sequence is not None:
            self.stop_reason, self.stop_sequence = "stop_sequence", final.stop_sequence
        for event in self._close():
            yield event
        for event in self._message_end(self.stop_reason, self.stop_sequence, self.usage):
            yield event

    def closing_events(self, reason: EndReason, message: str) -> Sequence[Event]:
        """Pure: a hub may ask before the end (the Redis hub keeps them for a dead worker)."""
        if self._finished:
            return []
        # An error may come first in an Anthropic stream; a message_delta may not.
        if reason == "error":
            return [_error(f"Generation failed: {message}", "server_error")]
        if reason == "shutdown":
            return [_error("Server shutting down; retry.", "shutting_down")]
        start = [] if self._begun else [self._start_event()]
        stops = [event for block in self._open for event in block.stop()]
        usage = Usage(0, self.output_tokens)
        return [*start, *stops, *self._message_end(None, None, usage)]


async def run_to_end(generation: MessagesGeneration) -> dict[str, Any]:
    """A non-streamed message: the whole Message object. Raises the engine's ``EngineError``."""
    await run_through(generation)
    return generation.message()

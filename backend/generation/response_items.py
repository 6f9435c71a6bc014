"""Output items of an OpenAI Response while they stream: message, reasoning, function call.

Each open item knows the events that open it, the template its deltas use,
and the events that close it. Closing is pure (``close`` returns the events
and the finished item without changing the item), because a hub may ask a
generation for its closing events before it has ended.

Events are ``(type, body)`` pairs here; the generation adds ``type`` and
``sequence_number`` when it numbers them. A delta event is a template
(everything but the sequence number and the text) plus
``<seq>,"delta":<escaped text>``, so one token costs one string escape.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from backend.generation.payload import dumps
from backend.hub.base import Template

ItemStatus = Literal["completed", "incomplete"]
Body = dict[str, Any]
Pending = tuple[str, Body]  # (event type, body without type and sequence_number)


def delta_template(event_type: str, fields: Mapping[str, Any]) -> Template:
    """The template of a delta event: ``prefix + '<seq>,"delta":"…"' + suffix``."""
    head = dumps({"type": event_type, **fields})[:-1]
    return Template(event_type, head + ',"sequence_number":', "}")


def logprobs_of(logprobs: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Chat Completions logprobs (``{"content": [...]}``) in the Responses shape."""
    if not logprobs:
        return []
    entries: list[dict[str, Any]] = []
    for entry in logprobs.get("content") or ():
        if not isinstance(entry, Mapping):
            continue
        top = [
            {"token": alt.get("token"), "logprob": alt.get("logprob")}
            for alt in entry.get("top_logprobs") or ()
            if isinstance(alt, Mapping)
        ]
        entries.append(
            {"token": entry.get("token"), "logprob": entry.get("logprob"), "top_logprobs": top}
        )
    return entries


@dataclass
class MessageItem:
    """An assistant message: content parts, each ``output_text`` or ``refusal``."""

    id: str
    output_index: int
    parts: list[Body] = field(default_factory=list)  # finished parts
    part_type: Literal["output_text", "refusal"] = "output_text"
    text: list[str] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    template: int = -1

    kind = "message"

    def opening(self) -> list[Pending]:
        item = {"id": self.id, "type": "message", "status": "in_progress", "role": "assistant"}
        return [
            (
                "response.output_item.added",
                {"output_index": self.output_index, "item": {**item, "content": []}},
            )
        ]

    def part_opening(self) -> tuple[list[Pending], Template]:
        where = {"item_id": self.id, "output_index": self.output_index}
        index = len(self.parts)
        empty: Body = (
            {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            if self.part_type == "output_text"
            else {"type": "refusal", "refusal": ""}
        )
        opening: list[Pending] = [
            ("response.content_part.added", {**where, "content_index": index, "part": empty})
        ]
        if self.part_type == "output_text":
            template = delta_template(
                "response.output_text.delta",
                {**where, "content_index": index, "logprobs": []},
            )
        else:
            template = delta_template("response.refusal.delta", {**where, "content_index": index})
        return opening, template

    def _part(self) -> tuple[list[Pending], Body]:
        where = {"item_id": self.id, "output_index": self.output_index}
        index = len(self.parts)
        text = "".join(self.text)
        if self.part_type == "output_text":
            part: Body = {
                "type": "output_text",
                "text": text,
                "annotations": [],
                "logprobs": list(self.logprobs),
            }
            done: Pending = (
                "response.output_text.done",
                {**where, "content_index": index, "text": text, "logprobs": list(self.logprobs)},
            )
        else:
            part = {"type": "refusal", "refusal": text}
            done = ("response.refusal.done", {**where, "content_index": index, "refusal": text})
        return [
            done,
            ("response.content_part.done", {**where, "content_index": index, "part": part}),
        ], part

    def close_part(self) -> list[Pending]:
        """End the current part (before a part of the other type begins)."""
        events, part = self._part()
        self.parts.append(part)
        self.text = []
        self.logprobs = []
        return events

    def close(self, status: ItemStatus) -> tuple[list[Pending], Body]:
        events, part = self._part()
        item = {
            "id": self.id,
            "type": "message",
            "status": status,
            "role": "assistant",
            "content": [*self.parts, part],
        }
        events.append(
            ("response.output_item.done", {"output_index": self.output_index, "item": item})
        )
        return events, item


@dataclass
class ReasoningItem:
    """Reasoning text, rendered as ``reasoning_text`` content, or as a summary part
    when the request asked for ``reasoning.summary`` (the text is not shortened)."""

    id: str
    output_index: int
    as_summary: bool
    text: list[str] = field(default_factory=list)
    template: int = -1

    kind = "reasoning"

    def _where(self) -> Body:
        where: Body = {"item_id": self.id, "output_index": self.output_index}
        if self.as_summary:
            where["summary_index"] = 0
        else:
            where["content_index"] = 0
        return where

    def opening(self) -> tuple[list[Pending], Template]:
        item: Body = {"id": self.id, "type": "reasoning", "summary": []}
        if not self.as_summary:
            item["content"] = []
        events: list[Pending] = [
            ("response.output_item.added", {"output_index": self.output_index, "item": item})
        ]
        if self.as_summary:
            part: Body = {"type": "summary_text", "text": ""}
            events.append(
                ("response.reasoning_summary_part.added", {**self._where(), "part": part})
            )
            return events, delta_template("response.reasoning_summary_text.delta", self._where())
        part = {"type": "reasoning_text", "text": ""}
        events.append(("response.content_part.added", {**self._where(), "part": part}))
        return events, delta_template("response.reasoning_text.delta", self._where())

    def close(self, status: ItemStatus) -> tuple[list[Pending], Body]:
        text = "".join(self.text)
        where = self._where()
        item: Body = {"id": self.id, "type": "reasoning", "summary": []}
        if self.as_summary:
            part: Body = {"type": "summary_text", "text": text}
            item["summary"] = [part]
            events: list[Pending] = [
                ("response.reasoning_summary_text.done", {**where, "text": text}),
                ("response.reasoning_summary_part.done", {**where, "part": part}),
            ]
        else:
            part = {"type": "reasoning_text", "text": text}
            item["content"] = [part]
            events = [
                ("response.reasoning_text.done", {**where, "text": text}),
                ("response.content_part.done", {**where, "part": part}),
            ]
        item["status"] = status
        events.append(
            ("response.output_item.done", {"output_index": self.output_index, "item": item})
        )
        return events, item


@dataclass
class FunctionCallItem:
    id: str
    output_index: int
    call_id: str
    name: str
    arguments: list[str] = field(default_factory=list)
    template: int = -1

    kind = "function_call"

    def _item(self, status: str, arguments: str) -> Body:
        return {
            "id": self.id,
            "type": "function_call",
            "status": status,
            "call_id": self.call_id,
            "name": self.name,
            "arguments": arguments,
        }

    def opening(self) -> tuple[list[Pending], Template]:
        events: list[Pending] = [
            (
                "response.output_item.added",
                {"output_index": self.output_index, "item": self._item("in_progress", "")},
            )
        ]
        where = {"item_id": self.id, "output_index": self.output_index}
        return events, delta_template("response.function_call_arguments.delta", where)

    def close(self, status: ItemStatus) -> tuple[list[Pending], Body]:
        arguments = "".join(self.arguments)
        item = self._item(status, arguments)
        where = {"item_id": self.id, "output_index": self.output_index}
        return [
            (
                "response.function_call_arguments.done",
                {**where, "name": self.name, "arguments": arguments},
            ),
            ("response.output_item.done", {"output_index": self.output_index, "item": item}),
        ], item


OpenItem = MessageItem | ReasoningItem | FunctionCallItem


def close_all(items: Sequence[OpenItem], status: ItemStatus) -> tuple[list[Pending], list[Body]]:
    """The events that close ``items`` in output order, and the finished items (pure)."""
    events: list[Pending] = []
    finished: list[Body] = []
    for item in sorted(items, key=lambda open_item: open_item.output_index):
        closing, done = item.close(status)
        events.extend(closing)
        finished.append(done)
    return events, finished

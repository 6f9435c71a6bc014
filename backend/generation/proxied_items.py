"""The output of a relayed response as far as its events have gone.

An upstream's events are relayed unchanged; this keeps the items they
describe, so a response stopped half-way (cancelled, failed, cut) still
stores and closes with what had been produced: each item as its
``output_item.added`` announced it, grown by its parts and deltas (text,
refusal, reasoning text and summaries, function-call arguments), replaced
by its ``output_item.done``. Items of kinds it does not know (hosted tool
calls …) are kept as the upstream last described them.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

Body = dict[str, Any]

# Delta events: (the list of parts in the item, the index field, the text field).
_PART_DELTAS: dict[str, tuple[str, str, str]] = {
    "response.output_text.delta": ("content", "content_index", "text"),
    "response.refusal.delta": ("content", "content_index", "refusal"),
    "response.reasoning_text.delta": ("content", "content_index", "text"),
    "response.reasoning_summary_text.delta": ("summary", "summary_index", "text"),
}
# Part events: (the list, the index field).
_PARTS: dict[str, tuple[str, str]] = {
    "response.content_part.added": ("content", "content_index"),
    "response.content_part.done": ("content", "content_index"),
    "response.reasoning_summary_part.added": ("summary", "summary_index"),
    "response.reasoning_summary_part.done": ("summary", "summary_index"),
}


def _put(parts: list[Any], index: int, value: Any) -> None:
    while len(parts) <= index:
        parts.append({})
    parts[index] = value


class OutputItems:
    """The items of one response, by output index."""

    def __init__(self) -> None:
        self._items: dict[int, Body] = {}
        self._done: set[int] = set()

    def apply(self, event: Body) -> bool:
        """Follow one event; True when it finished an item."""
        kind = event["type"]
        index = event.get("output_index")
        if not isinstance(index, int):
            return False
        item = event.get("item")
        if kind == "response.output_item.added" and isinstance(item, dict):
            self._items[index] = copy.deepcopy(item)
            return False
        if kind == "response.output_item.done" and isinstance(item, dict):
            self._items[index] = item
            self._done.add(index)
            return True
        current = self._items.get(index)
        if current is None or index in self._done:
            return False
        # A shape it does not follow leaves the item as last described.
        with contextlib.suppress(TypeError, AttributeError, KeyError, IndexError):
            self._grow(current, kind, event)
        return False

    @staticmethod
    def _grow(item: Body, kind: str, event: Body) -> None:
        if kind in _PARTS:
            field, position = _PARTS[kind]
            _put(item.setdefault(field, []), event[position], dict(event["part"]))
        elif kind in _PART_DELTAS:
            field, position, key = _PART_DELTAS[kind]
            part = item[field][event[position]]
            part[key] = part.get(key, "") + event["delta"]
        elif kind == "response.output_text.done":
            item["content"][event["content_index"]]["text"] = event["text"]
        elif kind == "response.function_call_arguments.delta":
            item["arguments"] = item.get("arguments", "") + event["delta"]
        elif kind == "response.function_call_arguments.done":
            item["arguments"] = event["arguments"]

    def finished(self) -> list[Body]:
        """The finished items, in output order."""
        return [self._items[index] for index in sorted(self._done)]

    def unfinished(self) -> list[tuple[int, Body]]:
        """(output index, the item as far as it got, status ``incomplete``) for each
        item still open: pure."""
        return [
            (index, {**item, "status": "incomplete"})
            for index, item in sorted(self._items.items())
            if index not in self._done
        ]

    def output(self) -> list[Body]:
        """Every item in output order, open ones as far as they got (``incomplete``)."""
        unfinished = dict(self.unfinished())
        return [unfinished.get(index, item) for index, item in sorted(self._items.items())]

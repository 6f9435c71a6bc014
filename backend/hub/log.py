"""A stream's events kept compactly: its templates once, then each event's variable part.

Every event is one tag and one slice of a single growing UTF-8 buffer: a tag
``t >= 0`` is a ``Fragment`` of template ``t`` (the slice is its part), a tag
``t < 0`` a whole event named ``names[~t]`` (the slice is its payload). A
content chunk then costs its escaped text plus twelve bytes of index, not a
Python string of the whole chunk JSON; and a finished stream is three flat
buffers, nothing the cyclic GC has to walk.

Readers get whole events back: ``prefix + part + suffix`` for a fragment, the
payload itself otherwise, so every reader, on every worker that rebuilds the
same log from the store, gets byte-identical payloads. The log never looks
inside a payload.

Text is stored as UTF-8 with ``errors="replace"``: a lone surrogate from an
engine becomes ``?``, exactly what the SSE encoder would have written.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

from backend.hub.base import Fragment, Produced, StreamEvent, Template


def template_size(template: Template) -> int:
    """Bytes a template adds to a stream's stored size (UTF-8, as written)."""
    return sum(len(text.encode("utf-8", "replace")) for text in template)


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "replace")


class EventLog:
    """Events ``base + 1 … base + len(log)`` of one stream (seq = SSE id)."""

    __slots__ = (
        "_data",
        "_ends",
        "_name_index",
        "_name_sizes",
        "_tags",
        "base",
        "names",
        "size",
        "templates",
    )

    def __init__(self, templates: Sequence[Template] = (), *, base: int = 0) -> None:
        self.base = base
        self.templates: tuple[Template, ...] = ()
        # Bytes stored: parts and payloads, event names of whole events, and
        # each template once. The hubs' byte bound counts this.
        self.size = 0
        # Event names of whole events: a whole event's tag ``t`` names ``names[~t]``.
        self.names: list[str] = []
        self._name_index: dict[str, int] = {}
        self._name_sizes: list[int] = []
        self._tags = array("i")
        self._ends = array("Q")
        self._data = bytearray()
        self.add_templates(templates)

    def __len__(self) -> int:
        return len(self._tags)

    @property
    def last_seq(self) -> int:
        return self.base + len(self._tags)

    def add_templates(self, templates: Sequence[Template]) -> int:
        """Take templates beyond those already known (the sequence is append-only);
        returns the bytes they add."""
        known = len(self.templates)
        if len(templates) <= known:
            return 0
        new = tuple(templates[known:])
        self.templates += new
        added = sum(template_size(template) for template in new)
        self.size += added
        return added

    # -- appending ----------------------------------------------------------------------------
    def append(self, item: Produced) -> int:
        """Append a produced item; returns the bytes it adds."""
        if isinstance(item, Fragment):
            return self.append_fragment(item.template, item.part)
        return self.append_event(item[0], item[1])

    def append_fragment(self, template: int, part: str) -> int:
        """A fragment of a template the log already has (``add_templates`` first)."""
        if not 0 <= template < len(self.templates):
            raise ValueError(f"fragment of unknown template {template}")
        return self.append_raw(template, _utf8(part))

    def append_event(self, name: str, payload: str) -> int:
        tag = self.name_tag(name)
        return self.append_raw(tag, _utf8(payload), self._name_sizes[~tag])

    def name_tag(self, name: str) -> int:
        """The (negative) tag of whole events named ``name``."""
        index = self._name_index.get(name)
        if index is None:
            index = self._name_index[name] = len(self.names)
            self.names.append(name)
            self._name_sizes.append(len(_utf8(name)))
        return ~index

    def append_raw(self, tag: int, data: bytes, name_bytes: int = 0) -> int:
        """Append one event given as its tag and UTF-8 bytes (how the store returns it)."""
        self._data += data
        self._ends.append(len(self._data))
        self._tags.append(tag)
        added = len(data) + name_bytes
        self.size += added
        return added

    def freeze(self) -> None:
        """The stream has ended: drop the buffer's spare capacity."""
        self._data = bytearray(self._data)

    # -- reading --------------------------------------------------------------------------------
    def read(self, after: int) -> list[StreamEvent]:
        """Every event with seq > ``after`` (``after >= base``), payloads whole."""
        base = self.base
        start = after - base
        tags, ends, data = self._tags, self._ends, self._data
        templates, names = self.templates, self.names
        begin = ends[start - 1] if start > 0 else 0
        events = []
        for index in range(start, len(tags)):
            end = ends[index]
            text = data[begin:end].decode("utf-8")
            tag = tags[index]
            if tag >= 0:
                template = templates[tag]
                events.append(
                    StreamEvent(
                        base + index + 1, template.event, template.prefix + text + template.suffix
                    )
                )
            else:
                events.append(StreamEvent(base + index + 1, names[~tag], text))
            begin = end
        return events

    def pack(
        self,
        after: int,
        stop: int,
        numbers: list[int],
        chunks: list[bytes | bytearray],
    ) -> None:
        """Events ``after + 1 … stop`` as stored, for a store: appends ``tag, length``
        per event to ``numbers`` and their data bytes, end to end, to ``chunks``."""
        start, end = after - self.base, stop - self.base
        if end <= start:
            return
        tags, ends = self._tags, self._ends
        begin = previous = ends[start - 1] if start > 0 else 0
        if end - start == 1:  # the usual case: one event since the last write
            previous = ends[start]
            numbers += (tags[start], previous - begin)
        else:
            for index in range(start, end):
                numbers += (tags[index], ends[index] - previous)
                previous = ends[index]
        chunks.append(self._data[begin:previous])

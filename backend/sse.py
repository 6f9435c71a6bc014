"""The SSE encoder: the only module that knows the wire format.

Spec: WHATWG HTML, "Server-sent events" (§9.2), "Parsing an event stream":
- a line ends with CRLF, LF or CR; an event ends with an empty line;
- ``data`` may span lines: each line of the value becomes its own ``data:``
  field, and the parser joins them with LF, so a value is split on CRLF, CR
  and LF (all three) and never carries a raw line break;
- ``event`` and ``id`` are single-line fields: a line break in them would
  start a new field, so they are rejected rather than silently split;
- an ``id`` containing U+0000 NULL is ignored by the parser, so it is
  rejected here too;
- ``retry`` is ASCII digits only;
- a line starting with ``:`` is a comment, which keeps proxies from timing
  out an idle connection without dispatching anything.

The hot path is ``encode_data_event``: our payloads are single-line JSON
(JSON escapes every control character), so an event is one f-string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# One bare comment line, no trailing blank line: a blank line after a comment
# makes httpx-sse (its issue #35) dispatch an empty event once an id was seen,
# and the spec does not need one: the next event's fields follow directly.
KEEPALIVE_COMMENT = b": ping\n"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_DONE = "[DONE]"


class SSEFieldError(ValueError):
    """A field value that cannot be represented on the wire."""


def _check_single_line(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise SSEFieldError(f"SSE {name} must not contain CR or LF: {value!r}")


def encode_event(
    data: str,
    *,
    event_id: int | str | None = None,
    event: str | None = None,
    retry_ms: int | None = None,
) -> bytes:
    """Encode one event; any ``data`` is accepted and round-trips exactly."""
    parts: list[str] = []
    if event is not None:
        _check_single_line("event", event)
        parts.append(f"event: {event}\n")
    if event_id is not None:
        text_id = str(event_id)
        _check_single_line("id", text_id)
        if "\0" in text_id:
            raise SSEFieldError("SSE id must not contain NULL (the parser would ignore it)")
        parts.append(f"id: {text_id}\n")
    if retry_ms is not None:
        if isinstance(retry_ms, bool) or not isinstance(retry_ms, int) or retry_ms < 0:
            raise SSEFieldError(f"SSE retry must be a non-negative integer: {retry_ms!r}")
        parts.append(f"retry: {retry_ms}\n")
    # A leading space in the value would be eaten by the parser (it strips
    # exactly one space after the colon), so we always write "data: " + value.
    for line in _LINE_BREAK.split(data):
        parts.append(f"data: {line}\n")
    parts.append("\n")
    return "".join(parts).encode("utf-8", "replace")


def encode_data_event(seq: int, data: str, retry_ms: int | None = None, event: str = "") -> bytes:
    """Encode a numbered event; fast path for single-line payloads."""
    if "\n" in data or "\r" in data:
        return encode_event(data, event_id=seq, event=event or None, retry_ms=retry_ms)
    head = f"event: {event}\n" if event else ""
    if "\n" in event or "\r" in event:
        _check_single_line("event", event)
    if retry_ms is None:
        return f"{head}id: {seq}\ndata: {data}\n\n".encode("utf-8", "replace")
    return f"{head}id: {seq}\nretry: {retry_ms}\ndata: {data}\n\n".encode("utf-8", "replace")


def encode_batch(events: Iterable[tuple[int, str, str]], retry_ms: int | None = None) -> bytes:
    """Encode several numbered ``(seq, event name, data)`` events into one write
    (``retry`` on the first only; an empty name writes no ``event:`` field)."""
    parts: list[str] = []
    for seq, event, data in events:
        if retry_ms is None and "\n" not in data and "\r" not in data:
            # The common case, inlined. Event names come from our own renderers
            # (fixed strings), never from model output, so they need no check here.
            if event:
                parts.append(f"event: {event}\nid: {seq}\ndata: {data}\n\n")
            else:
                parts.append(f"id: {seq}\ndata: {data}\n\n")
        else:
            parts.append(encode_data_event(seq, data, retry_ms, event).decode("utf-8"))
            retry_ms = None
    # One encode per batch, not per event.
    return "".join(parts).encode("utf-8", "replace")


def encode_comment(text: str) -> bytes:
    """A comment line; multi-line text becomes several comment lines."""
    return "".join(f": {line}\n" for line in _LINE_BREAK.split(text)).encode("utf-8")


def is_done(data: str) -> bool:
    """The OpenAI stream terminator payload."""
    return data == _DONE


DONE = _DONE

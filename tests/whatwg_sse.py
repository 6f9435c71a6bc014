"""A reference event-stream parser, written line by line from the WHATWG spec.

HTML Living Standard, "Server-sent events" §9.2.6 "Interpreting an event
stream". Independent of both our encoder and httpx-sse, so tests can check
the encoder against the spec's own algorithm. Works on bytes, as a user
agent does: UTF-8 decode (one leading BOM stripped), then lines ending in
CRLF, LF or CR.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ParsedEvent:
    type: str
    data: str
    last_event_id: str


def parse_stream(raw: bytes) -> tuple[list[ParsedEvent], int | None]:
    """Every dispatched event, and the last valid ``retry`` value seen."""
    text = raw.decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    events: list[ParsedEvent] = []
    data_buffer = ""
    event_type = ""
    last_event_id = ""
    retry: int | None = None
    position = 0
    length = len(text)
    while position < length:
        # Find the end of the line: CRLF, LF or CR. An unterminated last line
        # is not processed (the spec discards it at end of stream).
        end = position
        while end < length and text[end] not in "\r\n":
            end += 1
        if end == length:
            break
        line = text[position:end]
        position = end + (2 if text.startswith("\r\n", end) else 1)
        if line == "":
            # Dispatch: an empty data buffer means no event.
            if data_buffer:
                data = data_buffer[:-1] if data_buffer.endswith("\n") else data_buffer
                events.append(ParsedEvent(event_type or "message", data, last_event_id))
            data_buffer = ""
            event_type = ""
            continue
        if line.startswith(":"):
            continue
        if ":" in line:
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
        else:
            field, value = line, ""
        if field == "event":
            event_type = value
        elif field == "data":
            data_buffer += value + "\n"
        elif field == "id":
            if "\0" not in value:
                last_event_id = value
        elif field == "retry" and value and all("0" <= char <= "9" for char in value):
            retry = int(value)
    return events, retry

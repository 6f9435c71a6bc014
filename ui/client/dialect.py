"""What the reconnect loop needs from a dialect, and the three dialects by name.

A dialect knows its routes (start, resume, cancel, non-streamed), its
request body, its auth header, and how to read its events; the reconnect
loop (``ui.client.stream``) and the builder know none of that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ui.client.models import ChatRequest, DialectName, Parsed

__all__ = [
    "Dialect",
    "EventParser",
    "HttpCall",
    "bearer",
    "dialect_for",
    "json_object_or_none",
    "resume_events",
]


@dataclass(frozen=True, slots=True)
class HttpCall:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)


class EventParser(Protocol):
    """Reads one stream's events in order (stateful: tool-call indexes, block types)."""

    def feed(self, event: str, data: str) -> Parsed: ...


class Dialect(Protocol):
    name: DialectName
    label: str

    def auth_headers(self, api_key: str | None) -> dict[str, str]: ...

    def start(self, request: ChatRequest, *, stream: bool) -> HttpCall: ...

    def resume(self, stream_id: str, last_id: str) -> HttpCall: ...

    def cancel_path(self, stream_id: str) -> str: ...

    def parser(self) -> EventParser: ...

    def parse_complete(self, payload: Mapping[str, Any]) -> Parsed: ...


def dialect_for(name: DialectName) -> Dialect:
    from ui.client.chat import CHAT
    from ui.client.messages import MESSAGES
    from ui.client.responses import RESPONSES

    dialects: dict[str, Dialect] = {"chat": CHAT, "responses": RESPONSES, "messages": MESSAGES}
    try:
        return dialects[name]
    except KeyError:
        raise ValueError(f"unknown dialect {name!r}; one of {sorted(dialects)}") from None


def bearer(api_key: str | None) -> dict[str, str]:
    """OpenAI's auth header (Chat Completions, Responses)."""
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def resume_events(path: str, stream_id: str, last_id: str) -> HttpCall:
    """``GET {path}/{stream_id}/events`` after ``Last-Event-ID``: how a Chat
    Completions or Messages stream resumes."""
    return HttpCall("GET", f"{path}/{stream_id}/events", headers={"Last-Event-ID": last_id})


def json_object_or_none(data: str) -> dict[str, Any] | None:
    try:
        payload = json.loads(data)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None

"""Everything ``ui.client`` raises, and how an HTTP error body becomes a readable message.

The status is checked before the body is parsed: a 4xx/5xx carries the
dialect's JSON error body (OpenAI ``{"error": {message, type, code}}`` or
Anthropic ``{"type": "error", "error": {type, message}}``), not an event
stream, and the user should see the server's message rather than "wrong
content type".
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from ui.client.models import Answer

__all__ = [
    "BackendHTTPError",
    "BackendUnreachableError",
    "ChatClientError",
    "ConnectionLostError",
    "StreamEventError",
    "describe",
    "error_fields",
    "opt_str",
    "raise_for_status",
]


class ChatClientError(Exception):
    """Base of everything this client raises; ``message`` is fit for a user to read."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackendUnreachableError(ChatClientError):
    """No HTTP response at all (connection refused, DNS, timeout before headers)."""


class BackendHTTPError(ChatClientError):
    """A 4xx/5xx response; carries the server's error fields (either dialect's shape)."""

    def __init__(
        self, status_code: int, message: str, error_type: str | None, code: str | None
    ) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.server_message = message
        self.error_type = error_type
        self.code = code


class StreamEventError(ChatClientError):
    """The server reported an error inside the stream (an in-band error event)."""

    def __init__(
        self, message: str, error_type: str | None, code: str | None, answer: Answer
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.code = code
        self.answer = answer  # what arrived before the error: text, metrics, event log


class ConnectionLostError(ChatClientError):
    """The stream broke and could not be resumed (no id, or reconnects exhausted)."""

    def __init__(self, message: str, answer: Answer) -> None:
        super().__init__(message)
        self.answer = answer


def opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def error_fields(body: bytes, fallback: str) -> tuple[str, str | None, str | None]:
    """(message, type, code) of an error response body, tolerantly."""
    try:
        payload = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return (text[:500] or fallback), None, None
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            return (
                str(message) if message else fallback,
                opt_str(error.get("type")),
                opt_str(error.get("code")),
            )
        if isinstance(error, str):
            return error, None, None
        detail = payload.get("detail")  # FastAPI's default error shape
        if detail is not None:
            return (detail if isinstance(detail, str) else json.dumps(detail)), None, None
    return fallback, None, None


async def raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    body = await response.aread()
    reason = response.reason_phrase or "error"
    message, error_type, code = error_fields(body, reason)
    raise BackendHTTPError(response.status_code, message, error_type, code)

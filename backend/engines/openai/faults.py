"""Upstream faults as ``UpstreamError``s with stable codes, and the one place that
quotes upstream text in a message (scrubbed of the API key, shortened).

==========================================  =========================
fault                                       code
==========================================  =========================
connection refused / DNS / connect timeout  ``upstream_unreachable``
HTTP 401 / 403                              ``upstream_auth_failed``
HTTP 404                                    ``upstream_not_found``
HTTP 429                                    ``upstream_rate_limited``
other HTTP 4xx                              ``upstream_bad_request``
HTTP 5xx                                    ``upstream_server_error``
connection dropped mid-stream               ``upstream_disconnected``
no event within the read timeout            ``upstream_timeout``
not SSE (content type, no events at all)    ``upstream_malformed``
chunk that is not JSON / not a chunk        ``upstream_malformed``
(Responses) event that is not JSON / typed  ``upstream_malformed``
``data: {"error": …}`` inside the stream    ``upstream_stream_error``
ends with neither finish_reason nor [DONE]  ``upstream_incomplete``
(Responses) ends before a terminal event    ``upstream_incomplete``
==========================================  =========================

Every one is an ``upstream_error`` (502 before streaming), except an upstream's
400, 413 and 422: it refused the request itself, so they are the client's
``invalid_request_error`` (400).

The upstream API key is sent only in the ``Authorization`` header and is
scrubbed from every message built here (some upstreams echo a wrong key back
in their 401 body).
"""

from __future__ import annotations

import json
from typing import Final

import httpx

from backend.engines.base import EngineError

ERROR_TYPE: Final = "upstream_error"
# How much of any upstream text to quote in a message.
_MAX_QUOTE_CHARS: Final = 300
_REDACTED: Final = "[redacted]"


class UpstreamError(EngineError):
    """An upstream fault; ``status`` is the upstream's HTTP status when it sent one."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        # An upstream that refuses the request itself (400, 413, 422: e.g. a field
        # relayed to it that it does not take, a prompt past its context) says the
        # client's request is bad: an invalid_request_error (a 400 before streaming),
        # not a gateway fault that SDKs would retry as a 5xx.
        error_type = "invalid_request_error" if status in _REFUSED else ERROR_TYPE
        super().__init__(message, error_type=error_type, code=code)
        self.status = status


_REFUSED: Final = frozenset({400, 413, 422})


class Faults:
    """Builds the ``UpstreamError`` for each fault of one upstream."""

    def __init__(self, base_url: str, api_key: str | None, read_timeout_s: float) -> None:
        self._base_url = base_url
        self._api_key = api_key
        self._read_timeout_s = read_timeout_s

    def where(self) -> str:
        """The upstream as shown in messages: no credentials, no query string."""
        url = httpx.URL(self._base_url)
        host = f"[{url.host}]" if ":" in url.host else url.host  # IPv6 literal
        port = f":{url.port}" if url.port else ""
        return self._redact(f"{url.scheme}://{host}{port}{url.path}")

    def quote(self, text: str) -> str:
        """Upstream text for a message: scrubbed first, then shortened, then repr'd."""
        text = self._redact(text)
        if len(text) > _MAX_QUOTE_CHARS:
            text = text[:_MAX_QUOTE_CHARS] + "…"
        return repr(text)

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, _REDACTED)
        return text

    # --- the faults ---------------------------------------------------------------

    def malformed(self, what: str) -> UpstreamError:
        return UpstreamError(f"upstream {self.where()} {what}", code="upstream_malformed")

    def malformed_chunk(self, data: str) -> UpstreamError:
        return self.malformed(f"sent JSON that is not a chat.completion.chunk: {self.quote(data)}")

    def not_json(self, data: str) -> UpstreamError:
        return self.malformed(f"sent a chunk that is not valid JSON: {self.quote(data)}")

    def in_band(self, obj: object, data: str) -> UpstreamError:
        return UpstreamError(
            f"upstream {self.where()} reported an error mid-stream: "
            f"{self.quote(error_message(obj) or data)}",
            code="upstream_stream_error",
        )

    def not_an_event(self, data: str) -> UpstreamError:
        return self.malformed(
            f"sent an event that is not a Responses API event: {self.quote(data)}"
        )

    def unfinished_response(self) -> UpstreamError:
        return UpstreamError(
            f"upstream {self.where()} ended the Responses stream before its terminal event "
            "(response.completed, response.incomplete or response.failed)",
            code="upstream_incomplete",
        )

    def not_event_stream(self, status: int, content_type: str) -> UpstreamError:
        return UpstreamError(
            f"upstream {self.where()} answered HTTP {status} with Content-Type "
            f"{self.quote(content_type or '(none)')} instead of text/event-stream",
            code="upstream_malformed",
            status=status,
        )

    def no_events(self) -> UpstreamError:
        return self.malformed(
            "closed the stream without sending any SSE event: is upstream_url an "
            "OpenAI-compatible API base (…/v1)?"
        )

    def incomplete(self) -> UpstreamError:
        return UpstreamError(
            f"upstream {self.where()} ended the stream before the answer was complete "
            "(no finish_reason and no [DONE])",
            code="upstream_incomplete",
        )

    def stalled(self) -> UpstreamError:
        return UpstreamError(
            f"upstream {self.where()} sent no complete event for "
            f"{self._read_timeout_s:g}s (stalled or too slow)",
            code="upstream_timeout",
        )

    def bad_models(self) -> UpstreamError:
        return self.malformed("sent a /models answer that is not an OpenAI model list")

    def status(self, status: int, body: bytes) -> UpstreamError:
        text = body.decode("utf-8", "replace")
        try:
            detail = error_message(json.loads(text)) or text
        except ValueError:
            detail = text
        detail = " ".join(detail.split())
        message = f"upstream {self.where()} answered HTTP {status}"
        if detail:
            message += f": {self.quote(detail)}"
        return UpstreamError(message, code=status_code(status), status=status)

    def transport(self, exc: httpx.RequestError) -> UpstreamError:
        reason = self.quote(str(exc) or type(exc).__name__)
        if isinstance(exc, httpx.DecodingError):
            return self.malformed(f"sent a body that cannot be decoded: {reason}")
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol):
            return UpstreamError(
                f"cannot connect to upstream {self.where()}: {reason}",
                code="upstream_unreachable",
            )
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamError(
                f"upstream {self.where()} was silent for more than "
                f"{self._read_timeout_s:g}s ({type(exc).__name__})",
                code="upstream_timeout",
            )
        # ReadError, RemoteProtocolError ("incomplete chunked read"), WriteError…
        return UpstreamError(
            f"upstream {self.where()} dropped the connection mid-stream: {reason}",
            code="upstream_disconnected",
        )


def status_code(status: int) -> str:
    if status in (401, 403):
        return "upstream_auth_failed"
    if status == 404:
        return "upstream_not_found"
    if status == 429:
        return "upstream_rate_limited"
    if status >= 500:
        return "upstream_server_error"
    return "upstream_bad_request"


def error_message(obj: object) -> str | None:
    """The message of the error shapes upstreams use: OpenAI, FastAPI, TGI, plain."""
    if not isinstance(obj, dict):
        return None
    error = obj.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    if isinstance(error, str):
        return error
    for key in ("message", "detail"):
        value = obj.get(key)
        if isinstance(value, str):
            return value
        if value is not None:
            return json.dumps(value)
    return None

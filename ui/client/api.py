"""``ChatClient``: the UI's only way to the backend (an async httpx client of the HTTP contract)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from ui.client.builder import AnswerBuilder
from ui.client.dialect import dialect_for
from ui.client.errors import (
    BackendUnreachableError,
    ChatClientError,
    StreamEventError,
    describe,
    raise_for_status,
)
from ui.client.models import Answer, ChatRequest, DialectName
from ui.client.stream import ChatStream

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_S",
    "DEFAULT_MAX_RECONNECTS",
    "DEFAULT_READ_TIMEOUT_S",
    "ChatClient",
    "make_http_client",
]

DEFAULT_READ_TIMEOUT_S = 60.0  # > the backend's default keep-alive (15 s), with margin
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_RECONNECTS = 5  # consecutive re-attaches that bring no new event


def make_http_client(
    base_url: str,
    *,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` suited to this client (base URL, SSE-friendly timeouts)."""
    timeout = httpx.Timeout(connect_timeout_s, read=read_timeout_s)
    # Many parallel streams (Compare, several users): lift httpx's default pool of 100
    # connections only for concurrency; keep-alive count is fine as is.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"), timeout=timeout, limits=limits, transport=transport
    )


@dataclass
class ChatClient:
    """Client of the ssechat HTTP API. The ``httpx.AsyncClient`` is injected (its base URL set).

    ``read_timeout_s`` must exceed the server's keep-alive interval
    (``SSECHAT_KEEPALIVE_S``, 15 s by default); it is applied per request, so
    an injected client with httpx's 5 s default still works. The dialect is
    per request (``ChatRequest.dialect``).
    """

    http: httpx.AsyncClient
    api_key: str | None = None
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    max_reconnects: int = DEFAULT_MAX_RECONNECTS
    timeout: httpx.Timeout = field(init=False)

    def __post_init__(self) -> None:
        self.timeout = httpx.Timeout(self.connect_timeout_s, read=self.read_timeout_s)

    @property
    def base_url(self) -> str:
        return str(self.http.base_url).rstrip("/")

    def auth_headers(self, dialect: DialectName = "chat") -> dict[str, str]:
        return dialect_for(dialect).auth_headers(self.api_key)

    def stream_chat(self, request: ChatRequest) -> ChatStream:
        """Start streaming an answer (the request is sent on first iteration)."""
        return ChatStream(self, request)

    async def complete(self, request: ChatRequest) -> Answer:
        """The same request with ``stream: false``: one JSON answer (Compare's baseline)."""
        dialect = dialect_for(request.dialect)
        call = dialect.start(request, stream=False)
        started = time.perf_counter()
        response = await self._request(call.method, call.path, request.dialect, json=call.json)
        duration = time.perf_counter() - started
        parsed = dialect.parse_complete(_json_object(response))
        built = AnswerBuilder(request.dialect, streamed=False)
        built.add(parsed, duration)
        answer = built.answer(duration)
        if parsed.error is not None:
            raise StreamEventError(
                parsed.error.message, parsed.error.type, parsed.error.code, answer
            )
        return answer

    async def models(self) -> list[str]:
        """Model ids from ``GET /v1/models``."""
        payload = _json_object(await self._request("GET", "/v1/models"))
        data = payload.get("data") or []
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    async def health(self) -> dict[str, Any]:
        """``GET /healthz`` as a dict (status, engine, model, hub, …)."""
        return _json_object(await self._request("GET", "/healthz"))

    async def cancel(self, stream_id: str, *, dialect: DialectName = "chat") -> None:
        """The dialect's cancel route, e.g. ``POST /v1/chat/completions/{id}/cancel``."""
        await self._request("POST", dialect_for(dialect).cancel_path(stream_id), dialect)

    async def _request(
        self, method: str, path: str, dialect: DialectName = "chat", **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self.http.request(
                method, path, headers=self.auth_headers(dialect), timeout=self.timeout, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise BackendUnreachableError(
                f"the backend at {self.base_url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise BackendUnreachableError(
                f"cannot reach the backend at {self.base_url} ({describe(exc)})"
            ) from exc
        await raise_for_status(response)
        return response


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as exc:
        raise ChatClientError(f"the backend sent invalid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ChatClientError("the backend sent JSON that is not an object")
    return payload

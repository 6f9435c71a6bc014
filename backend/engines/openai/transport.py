"""HTTP to one upstream: streamed POSTs read as SSE events, JSON GETs, a status probe.

What the Chat Completions stream (``engine``) and the native Responses relay
(``responses``) share: the headers (the API key goes in ``Authorization``
only), the timeouts, checking a response before reading it as events, the
deadline per whole event, and every fault turned into an ``UpstreamError``
(``faults``). The ``httpx.AsyncClient`` is not ours: the app's lifespan
builds and closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any, Final

import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse

from backend.engines.openai.faults import Faults

# How much of an error body to read.
_MAX_ERROR_BODY_BYTES: Final = 64 * 1024


class EventReader:
    """The events of one upstream response, each within the read deadline."""

    def __init__(self, events: AsyncGenerator[ServerSentEvent, None], http: UpstreamHTTP) -> None:
        self._events = events
        self._http = http

    async def next(self) -> ServerSentEvent | None:
        """The next event that carries data, or None at the end of the stream.

        The deadline covers the whole event, not each socket read: httpx's read
        timeout restarts on every byte, so an upstream trickling one byte a
        second would never trip it. Comments (keep-alives) and the empty events
        httpx-sse yields after a comment once an id was seen (its issue #35)
        do not count as progress.
        """
        faults = self._http.faults
        try:
            async with asyncio.timeout(self._http.read_timeout_s):
                while True:
                    sse = await anext(self._events, None)
                    if sse is None or sse.data or sse.event not in ("", "message"):
                        return sse
        except TimeoutError:
            raise faults.stalled() from None
        except SSEError as exc:
            raise faults.malformed(
                f"sent a malformed event stream: {faults.quote(str(exc))}"
            ) from None


class UpstreamHTTP:
    """Requests to one upstream API base (``…/v1``)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None,
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self.read_timeout_s = read_timeout_s
        self.timeout = httpx.Timeout(
            connect=connect_timeout_s,
            read=read_timeout_s,
            write=connect_timeout_s,
            pool=connect_timeout_s,
        )
        self.faults = Faults(self.base_url, self._api_key, read_timeout_s)
        self._client = client

    def headers(self) -> dict[str, str]:
        if self._api_key is None:
            return {}
        return {"Authorization": f"Bearer {self._api_key}"}

    @contextlib.asynccontextmanager
    async def post_events(
        self, path: str, payload: Mapping[str, Any]
    ) -> AsyncIterator[EventReader]:
        """POST ``payload`` and read the answer as SSE events.

        A status of 400 or more, or an answer that is not ``text/event-stream``,
        is raised as an ``UpstreamError`` before any event; so is a transport
        failure at any point. Leaving the block early closes the response and,
        since its body was not read to the end, its connection: the upstream
        sees the client go away and can stop generating.
        """
        # ASCII-escaped JSON, not httpx's json= (raw UTF-8): a lone surrogate a client
        # sent as a \uXXXX escape cannot be UTF-8 encoded, but it can be passed on.
        body = json.dumps(payload).encode()
        try:
            async with aconnect_sse(
                self._client,
                "POST",
                f"{self.base_url}{path}",
                content=body,
                headers={"Content-Type": "application/json", **self.headers()},
                timeout=self.timeout,
            ) as source:
                await self._check_response(source.response)
                events = source.aiter_sse()
                try:
                    yield EventReader(events, self)
                finally:
                    await events.aclose()
        except httpx.RequestError as exc:
            raise self.faults.transport(exc) from None

    async def get_json(self, path: str) -> Any:
        """``GET`` a JSON document; an error status or a transport failure raises."""
        try:
            response = await self._client.get(
                f"{self.base_url}{path}", headers=self.headers(), timeout=self.timeout
            )
        except httpx.RequestError as exc:
            raise self.faults.transport(exc) from None
        if response.status_code >= 400:
            raise self.faults.status(response.status_code, response.content)
        return response.json()

    async def post_status(self, path: str, payload: Mapping[str, Any]) -> int:
        """The status a ``POST`` gets (the body is read and dropped); raises on a
        transport failure."""
        try:
            response = await self._client.post(
                f"{self.base_url}{path}",
                content=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json", **self.headers()},
                timeout=self.timeout,
            )
        except httpx.RequestError as exc:
            raise self.faults.transport(exc) from None
        return response.status_code

    async def _check_response(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            body = await self._read_error_body(response)
            raise self.faults.status(response.status_code, body)
        content_type = response.headers.get("content-type", "").partition(";")[0].strip()
        if content_type.lower() != "text/event-stream":
            raise self.faults.not_event_stream(response.status_code, content_type)

    async def _read_error_body(self, response: httpx.Response) -> bytes:
        """At most 64 KiB of an error body, within the read deadline."""
        body = bytearray()
        try:
            async with asyncio.timeout(self.read_timeout_s):
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) >= _MAX_ERROR_BODY_BYTES:
                        break
        except (TimeoutError, httpx.TransportError):
            pass  # The status alone still makes a useful error.
        return bytes(body[:_MAX_ERROR_BODY_BYTES])

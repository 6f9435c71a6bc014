"""The ``openai`` engine: stream from any OpenAI-compatible upstream (OpenAI, vLLM,
Ollama, llama.cpp server, TGI) through httpx + httpx-sse.

One ``POST {upstream_url}/chat/completions`` with ``stream: true`` per
generation; each ``chat.completion.chunk`` becomes a ``TokenDelta``. Every
upstream fault becomes an ``UpstreamError`` (an ``EngineError``) with a stable
``code``, so the route can turn it into an SSE error event:

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
no event within ``upstream_read_timeout_s``  ``upstream_timeout``
not SSE (content type, no events at all)    ``upstream_malformed``
chunk that is not JSON / not a chunk        ``upstream_malformed``
``data: {"error": …}`` inside the stream    ``upstream_stream_error``
ends with neither finish_reason nor [DONE]  ``upstream_incomplete``
==========================================  =========================

The upstream API key is sent only in the ``Authorization`` header and is
scrubbed from every message this module builds (some upstreams echo a wrong
key back in their 401 body).

The engine does not own the ``httpx.AsyncClient``: the app's lifespan builds
it (pool limits, proxies) and closes it, so ``aclose`` has nothing to do.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Final

import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse

from backend.config import Settings
from backend.engines.base import (
    EngineError,
    FinishReason,
    GenerationRequest,
    TokenDelta,
    Usage,
    refuse_unsupported,
)
from backend.engines.text import WholeChars

__all__ = ["DEFAULT_MODEL", "OpenAIUpstreamEngine", "UpstreamError", "estimate_prompt_tokens"]

logger = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "gpt-4o-mini"
ERROR_TYPE: Final = "upstream_error"
# How much of an error body to read, and how much of any upstream text to quote.
_MAX_ERROR_BODY_BYTES: Final = 64 * 1024
_MAX_QUOTE_CHARS: Final = 300
_REDACTED: Final = "[redacted]"


class UpstreamError(EngineError):
    """An upstream fault; ``status`` is the upstream's HTTP status when it sent one."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message, error_type=ERROR_TYPE, code=code)
        self.status = status


def estimate_prompt_tokens(request: GenerationRequest) -> int:
    """Rough prompt size when the upstream reports no usage.

    OpenAI's rule of thumb: about 4 characters per token, plus about 4 tokens
    of chat-template overhead per message. Only used for ``Usage`` when the
    upstream sends none (``upstream_stream_options`` off, or an upstream that
    ignores ``include_usage``); never for limits.
    """
    chars = sum(len(message.content) for message in request.messages)
    return (chars + 3) // 4 + 4 * len(request.messages)


@dataclass(frozen=True, slots=True)
class _Chunk:
    """What we use of one ``chat.completion.chunk``."""

    text: str
    finish_reason: str | None
    usage: Usage | None


class OpenAIUpstreamEngine:
    """Relays a generation from an OpenAI-compatible ``/chat/completions`` upstream."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        if not settings.upstream_url:
            raise ValueError(
                "the openai engine needs an upstream: set SSECHAT_UPSTREAM_URL "
                "(or --upstream-url), e.g. http://127.0.0.1:8080/v1"
            )
        self._base_url = settings.upstream_url.rstrip("/")
        self._api_key = settings.upstream_api_key or None
        self._stream_options = settings.upstream_stream_options
        self._read_timeout_s = settings.upstream_read_timeout_s
        self._timeout = httpx.Timeout(
            connect=settings.upstream_connect_timeout_s,
            read=settings.upstream_read_timeout_s,
            write=settings.upstream_connect_timeout_s,
            pool=settings.upstream_connect_timeout_s,
        )
        self._configured_model = settings.model
        self._models: tuple[str, ...] = (settings.model or DEFAULT_MODEL,)
        self._client = client

    @property
    def name(self) -> str:
        return "openai"

    @property
    def models(self) -> tuple[str, ...]:
        return self._models

    async def aclose(self) -> None:
        """Nothing to release: the injected client belongs to the app's lifespan."""

    async def fetch_models(self) -> tuple[str, ...]:
        """The model ids the upstream lists at ``GET {upstream_url}/models``."""
        url = f"{self._base_url}/models"
        try:
            response = await self._client.get(url, headers=self._headers(), timeout=self._timeout)
        except httpx.RequestError as exc:
            raise self._transport_error(exc) from None
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.content)
        try:
            ids = tuple(str(item["id"]) for item in response.json()["data"])
        except (ValueError, KeyError, TypeError):
            raise UpstreamError(
                f"upstream {self._where()} sent a /models answer that is not an OpenAI model list",
                code="upstream_malformed",
            ) from None
        return ids

    async def refresh_models(self) -> tuple[str, ...]:
        """Adopt the upstream's model list, unless ``settings.model`` pins one.

        Meant for the lifespan (best effort: the caller decides whether an
        unreachable upstream at startup is fatal).
        """
        if self._configured_model is None:
            ids = await self.fetch_models()
            if ids:
                self._models = ids
        return self._models

    def check(self, request: GenerationRequest) -> None:
        refuse_unsupported(request, self.name, frozenset())

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        """Yield the upstream's text deltas; the last delta carries finish_reason and usage.

        Cancelling the consuming task (or closing this generator) leaves the
        ``async with`` blocks, which closes the upstream response and, since
        its body was not read to the end, its connection: the upstream sees
        the client go away and can stop generating.
        """
        payload = self._payload(request)
        url = f"{self._base_url}/chat/completions"
        chars = WholeChars()
        text_deltas = 0
        finish: str | None = None
        usage: Usage | None = None
        saw_done = False
        saw_event = False
        try:
            async with aconnect_sse(
                self._client,
                "POST",
                url,
                json=payload,
                headers=self._headers(),
                timeout=self._timeout,
            ) as source:
                await self._check_response(source.response)
                events = source.aiter_sse()
                try:
                    while True:
                        sse = await self._next_event(events)
                        if sse is None:
                            break
                        saw_event = True
                        if sse.data.strip() == "[DONE]":
                            saw_done = True
                            break
                        chunk = self._parse(sse)
                        if chunk.usage is not None:
                            usage = chunk.usage
                        if chunk.finish_reason is not None:
                            finish = chunk.finish_reason
                        if chunk.text:
                            if text_deltas >= request.max_tokens and finish is None:
                                # A delta beyond max_tokens: the upstream ignores it, and
                                # must not grow our stream (and the hub's buffer) unbounded.
                                finish = "length"
                                break
                            text_deltas += 1
                            text = chars.feed(chunk.text)
                            if text:
                                yield TokenDelta(text)
                finally:
                    await events.aclose()
        except UpstreamError as exc:
            self._keep_if_complete(finish, exc)
        except httpx.RequestError as exc:
            self._keep_if_complete(finish, self._transport_error(exc))

        if finish is None and not saw_done:
            if not saw_event:
                raise UpstreamError(
                    f"upstream {self._where()} closed the stream without sending any SSE "
                    "event: is upstream_url an OpenAI-compatible API base (…/v1)?",
                    code="upstream_malformed",
                )
            raise UpstreamError(
                f"upstream {self._where()} ended the stream before the answer was complete "
                "(no finish_reason and no [DONE])",
                code="upstream_incomplete",
            )
        if usage is None:
            # No usage from the upstream: one content delta is about one token.
            usage = Usage(estimate_prompt_tokens(request), text_deltas)
        yield TokenDelta(chars.flush(), finish_reason=_finish_reason(finish), usage=usage)

    def _keep_if_complete(self, finish: str | None, error: UpstreamError) -> None:
        """Raise ``error`` unless the upstream had already finished the answer.

        After a finish_reason only the usage chunk and [DONE] can be missing:
        not worth failing a complete answer for. An in-band error still counts.
        """
        if finish is None or error.code == "upstream_stream_error":
            raise error from None
        logger.warning("upstream %s: %s after finish_reason; keeping answer", self._where(), error)

    # --- request -----------------------------------------------------------------

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
        }
        if request.seed is not None:
            payload["seed"] = request.seed
        if request.stop:
            payload["stop"] = list(request.stop)
        # Some upstreams reject unknown fields, hence the per-upstream switch.
        if self._stream_options:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _headers(self) -> dict[str, str]:
        if self._api_key is None:
            return {}
        return {"Authorization": f"Bearer {self._api_key}"}

    # --- response ----------------------------------------------------------------

    async def _check_response(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            body = await self._read_error_body(response)
            raise self._status_error(response.status_code, body)
        content_type = response.headers.get("content-type", "").partition(";")[0].strip()
        if content_type.lower() != "text/event-stream":
            raise UpstreamError(
                f"upstream {self._where()} answered HTTP {response.status_code} with Content-Type "
                f"{self._quote(content_type or '(none)')} instead of text/event-stream",
                code="upstream_malformed",
                status=response.status_code,
            )

    async def _read_error_body(self, response: httpx.Response) -> bytes:
        """At most 64 KiB of an error body, within the read deadline."""
        body = bytearray()
        try:
            async with asyncio.timeout(self._read_timeout_s):
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) >= _MAX_ERROR_BODY_BYTES:
                        break
        except (TimeoutError, httpx.TransportError):
            pass  # The status alone still makes a useful error.
        return bytes(body[:_MAX_ERROR_BODY_BYTES])

    async def _next_event(
        self, events: AsyncGenerator[ServerSentEvent, None]
    ) -> ServerSentEvent | None:
        """The next event that carries data, or None at the end of the stream.

        The deadline covers the whole event, not each socket read: httpx's read
        timeout restarts on every byte, so an upstream trickling one byte a
        second would never trip it. Comments (keep-alives) and the empty events
        httpx-sse yields after a comment once an id was seen (its issue #35)
        do not count as progress.
        """
        try:
            async with asyncio.timeout(self._read_timeout_s):
                while True:
                    sse = await anext(events, None)
                    if sse is None or sse.data or sse.event not in ("", "message"):
                        return sse
        except TimeoutError:
            raise UpstreamError(
                f"upstream {self._where()} sent no complete event for "
                f"{self._read_timeout_s:g}s (stalled or too slow)",
                code="upstream_timeout",
            ) from None
        except SSEError as exc:
            raise UpstreamError(
                f"upstream {self._where()} sent a malformed event stream: {self._quote(str(exc))}",
                code="upstream_malformed",
            ) from None

    def _parse(self, sse: ServerSentEvent) -> _Chunk:
        try:
            obj = json.loads(sse.data)
        except ValueError:
            raise UpstreamError(
                f"upstream {self._where()} sent a chunk that is not valid JSON: "
                f"{self._quote(sse.data)}",
                code="upstream_malformed",
            ) from None
        if not isinstance(obj, dict):
            raise self._malformed_chunk(sse.data)
        if "error" in obj or obj.get("object") == "error" or sse.event == "error":
            # vLLM, our own backend and others report late failures in-band.
            raise UpstreamError(
                f"upstream {self._where()} reported an error mid-stream: "
                f"{self._quote(_error_message(obj) or sse.data)}",
                code="upstream_stream_error",
            )
        choices = obj.get("choices")
        if not isinstance(choices, list):
            raise self._malformed_chunk(sse.data)
        usage = _parse_usage(obj.get("usage"))
        text = ""
        finish: str | None = None
        # We never ask for n > 1, so choice 0 is the answer; an empty list is
        # the include_usage chunk.
        for choice in choices:
            if not isinstance(choice, dict):
                raise self._malformed_chunk(sse.data)
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise self._malformed_chunk(sse.data)
            content = delta.get("content")
            if content is not None and not isinstance(content, str):
                raise self._malformed_chunk(sse.data)
            text = content or ""
            raw_finish = choice.get("finish_reason")
            finish = str(raw_finish) if raw_finish else None
        return _Chunk(text=text, finish_reason=finish, usage=usage)

    # --- errors ------------------------------------------------------------------

    def _where(self) -> str:
        """The upstream as shown in messages: no credentials, no query string."""
        url = httpx.URL(self._base_url)
        host = f"[{url.host}]" if ":" in url.host else url.host  # IPv6 literal
        port = f":{url.port}" if url.port else ""
        return self._redact(f"{url.scheme}://{host}{port}{url.path}")

    def _redact(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, _REDACTED)
        return text

    def _quote(self, text: str) -> str:
        """Upstream text for a message: scrubbed first, then shortened, then repr'd."""
        text = self._redact(text)
        if len(text) > _MAX_QUOTE_CHARS:
            text = text[:_MAX_QUOTE_CHARS] + "…"
        return repr(text)

    def _malformed_chunk(self, data: str) -> UpstreamError:
        return UpstreamError(
            f"upstream {self._where()} sent JSON that is not a chat.completion.chunk: "
            f"{self._quote(data)}",
            code="upstream_malformed",
        )

    def _status_error(self, status: int, body: bytes) -> UpstreamError:
        text = body.decode("utf-8", "replace")
        try:
            detail = _error_message(json.loads(text)) or text
        except ValueError:
            detail = text
        detail = " ".join(detail.split())
        message = f"upstream {self._where()} answered HTTP {status}"
        if detail:
            message += f": {self._quote(detail)}"
        return UpstreamError(message, code=_status_code(status), status=status)

    def _transport_error(self, exc: httpx.RequestError) -> UpstreamError:
        reason = self._quote(str(exc) or type(exc).__name__)
        if isinstance(exc, httpx.DecodingError):
            return UpstreamError(
                f"upstream {self._where()} sent a body that cannot be decoded: {reason}",
                code="upstream_malformed",
            )
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.UnsupportedProtocol):
            return UpstreamError(
                f"cannot connect to upstream {self._where()}: {reason}",
                code="upstream_unreachable",
            )
        if isinstance(exc, httpx.TimeoutException):
            return UpstreamError(
                f"upstream {self._where()} was silent for more than "
                f"{self._read_timeout_s:g}s ({type(exc).__name__})",
                code="upstream_timeout",
            )
        # ReadError, RemoteProtocolError ("incomplete chunked read"), WriteError…
        return UpstreamError(
            f"upstream {self._where()} dropped the connection mid-stream: {reason}",
            code="upstream_disconnected",
        )


def _status_code(status: int) -> str:
    if status in (401, 403):
        return "upstream_auth_failed"
    if status == 404:
        return "upstream_not_found"
    if status == 429:
        return "upstream_rate_limited"
    if status >= 500:
        return "upstream_server_error"
    return "upstream_bad_request"


def _error_message(obj: object) -> str | None:
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


def _parse_usage(raw: object) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens")
    completion = raw.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return Usage(prompt_tokens=prompt, completion_tokens=completion)
    return None


def _finish_reason(raw: str | None) -> FinishReason:
    """Map the upstream's reason onto ours; [DONE] without a reason counts as "stop"."""
    if raw == "length":
        return "length"
    # "stop", "eos_token" (TGI), "content_filter", "tool_calls": the answer ended.
    return "stop"

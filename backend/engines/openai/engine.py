"""``OpenAIUpstreamEngine``: one streamed ``POST {base_url}/chat/completions`` per
generation, relayed as ``TokenDelta``s.

The request body is ``payload.build_payload`` (every field, unknown ones
included), each chunk is parsed by ``chunks.ChunkParser``, every fault is an
``UpstreamError`` from ``faults.Faults``. The engine does not own the
``httpx.AsyncClient``: the app's lifespan builds it (pool limits, proxies)
and closes it, so ``aclose`` has nothing to do.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from typing import Final

import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse

from backend.engines.base import GenerationRequest, TokenDelta, Usage, unsupported
from backend.engines.openai.chunks import ChunkParser, finish_reason
from backend.engines.openai.faults import Faults, UpstreamError
from backend.engines.openai.payload import build_payload

logger = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "gpt-4o-mini"
# How much of an error body to read.
_MAX_ERROR_BODY_BYTES: Final = 64 * 1024


def estimate_prompt_tokens(request: GenerationRequest) -> int:
    """Rough prompt size when the upstream reports no usage.

    OpenAI's rule of thumb: about 4 characters per token, plus about 4 tokens
    of chat-template overhead per message. Only used for ``Usage`` when the
    upstream sends none (``include_usage`` off, or an upstream that ignores
    it); never for limits.
    """
    chars = sum(
        len(message.content) + sum(len(call.arguments) for call in message.tool_calls)
        for message in request.messages
    )
    return (chars + 3) // 4 + 4 * len(request.messages)


class OpenAIUpstreamEngine:
    """Relays a generation from an OpenAI-compatible ``/chat/completions`` upstream."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: str | None = None,
        include_usage: bool = True,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
        model: str | None = None,
    ) -> None:
        """``model`` pins the model id served; otherwise ``refresh_models`` adopts
        the upstream's list (``DEFAULT_MODEL`` until then)."""
        if not base_url:
            raise ValueError(
                "the openai engine needs an upstream: set SSECHAT_UPSTREAM_URL "
                "(or --upstream-url), e.g. http://127.0.0.1:8080/v1"
            )
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self._include_usage = include_usage
        self._read_timeout_s = read_timeout_s
        self._timeout = httpx.Timeout(
            connect=connect_timeout_s,
            read=read_timeout_s,
            write=connect_timeout_s,
            pool=connect_timeout_s,
        )
        self._faults = Faults(self._base_url, self._api_key, read_timeout_s)
        self._configured_model = model
        self._models: tuple[str, ...] = (model or DEFAULT_MODEL,)
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
        """The model ids the upstream lists at ``GET {base_url}/models``."""
        url = f"{self._base_url}/models"
        try:
            response = await self._client.get(url, headers=self._headers(), timeout=self._timeout)
        except httpx.RequestError as exc:
            raise self._faults.transport(exc) from None
        if response.status_code >= 400:
            raise self._faults.status(response.status_code, response.content)
        try:
            ids = tuple(str(item["id"]) for item in response.json()["data"])
        except (ValueError, KeyError, TypeError):
            raise self._faults.bad_models() from None
        return ids

    async def refresh_models(self) -> tuple[str, ...]:
        """Adopt the upstream's model list, unless a model id was pinned.

        Meant for the lifespan (best effort: the caller decides whether an
        unreachable upstream at startup is fatal).
        """
        if self._configured_model is None:
            ids = await self.fetch_models()
            if ids:
                self._models = ids
        return self._models

    def check(self, request: GenerationRequest) -> None:
        """Everything is forwarded except a thinking budget, which Chat Completions
        cannot express (mapping it onto ``reasoning_effort`` would be a guess)."""
        if request.reasoning_budget_tokens is not None:
            raise unsupported(
                "reasoning_budget_tokens",
                self.name,
                "an OpenAI-compatible upstream takes no thinking budget; "
                "send reasoning_effort (low, medium, high) instead",
            )

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        """Yield the upstream's deltas; the last one carries finish_reason and usage.

        Cancelling the consuming task (or closing this generator) leaves the
        ``async with`` blocks, which closes the upstream response and, since
        its body was not read to the end, its connection: the upstream sees
        the client go away and can stop generating.
        """
        # ASCII-escaped JSON, not httpx's json= (raw UTF-8): a lone surrogate a client
        # sent as a \uXXXX escape cannot be UTF-8 encoded, but it can be passed on.
        body = json.dumps(build_payload(request, include_usage=self._include_usage)).encode()
        url = f"{self._base_url}/chat/completions"
        parser = ChunkParser(self._faults)
        generated = 0
        finish: str | None = None
        stop_sequence: str | None = None
        usage: Usage | None = None
        saw_done = False
        saw_event = False
        try:
            async with aconnect_sse(
                self._client,
                "POST",
                url,
                content=body,
                headers={"Content-Type": "application/json", **self._headers()},
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
                        chunk = parser.parse(sse.data, sse.event)
                        if chunk.usage is not None:
                            usage = chunk.usage
                        if chunk.finish_reason is not None:
                            finish = chunk.finish_reason
                        if chunk.stop_sequence is not None:
                            stop_sequence = chunk.stop_sequence
                        if chunk.generated:
                            if generated >= request.max_tokens and finish is None:
                                # More than max_tokens pieces (content, reasoning, refusal,
                                # tool-call fragments: each about a token): the upstream
                                # ignores the limit, and must not grow our stream (and
                                # the hub's buffer) unbounded.
                                finish = "length"
                                break
                            generated += 1
                        if _carries(chunk.delta):
                            yield chunk.delta
                finally:
                    await events.aclose()
        except UpstreamError as exc:
            self._keep_if_complete(finish, exc)
        except httpx.RequestError as exc:
            self._keep_if_complete(finish, self._faults.transport(exc))

        if finish is None and not saw_done:
            raise self._faults.incomplete() if saw_event else self._faults.no_events()
        if usage is None:
            # No usage from the upstream: one generated piece is about one token.
            usage = Usage(estimate_prompt_tokens(request), generated)
        tail = parser.flush()
        reason = finish_reason(finish)
        yield TokenDelta(
            text=tail.text,
            reasoning=tail.reasoning,
            refusal=tail.refusal,
            tool_calls=tail.tool_calls,
            finish_reason=reason,
            usage=usage,
            # Only one of the client's own stop sequences is reported as such.
            stop_sequence=(
                stop_sequence if reason == "stop" and stop_sequence in request.stop else None
            ),
        )

    def _keep_if_complete(self, finish: str | None, error: UpstreamError) -> None:
        """Raise ``error`` unless the upstream had already finished the answer.

        After a finish_reason only the usage chunk and [DONE] can be missing:
        not worth failing a complete answer for. An in-band error still counts.
        """
        if finish is None or error.code == "upstream_stream_error":
            raise error from None
        logger.warning(
            "upstream %s: %s after finish_reason; keeping answer", self._faults.where(), error
        )

    def _headers(self) -> dict[str, str]:
        if self._api_key is None:
            return {}
        return {"Authorization": f"Bearer {self._api_key}"}

    async def _check_response(self, response: httpx.Response) -> None:
        if response.status_code >= 400:
            body = await self._read_error_body(response)
            raise self._faults.status(response.status_code, body)
        content_type = response.headers.get("content-type", "").partition(";")[0].strip()
        if content_type.lower() != "text/event-stream":
            raise self._faults.not_event_stream(response.status_code, content_type)

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
            raise self._faults.stalled() from None
        except SSEError as exc:
            raise self._faults.malformed(
                f"sent a malformed event stream: {self._faults.quote(str(exc))}"
            ) from None


def _carries(delta: TokenDelta) -> bool:
    return bool(
        delta.text or delta.reasoning or delta.refusal or delta.tool_calls or delta.logprobs
    )

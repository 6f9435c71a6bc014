"""``OpenAIUpstreamEngine``: one streamed ``POST {base_url}/chat/completions`` per
generation, relayed as ``TokenDelta``s.

The request body is ``payload.build_payload`` (every field, unknown ones
included), each chunk is parsed by ``chunks.ChunkParser``, every fault is an
``UpstreamError`` from ``faults.Faults``, the HTTP is ``transport``'s. The
engine also relays ``/v1/responses`` natively when its upstream speaks the
Responses API (``responses``: the ``ResponsesUpstream`` capability). The
engine does not own the ``httpx.AsyncClient``: the app's lifespan builds it
(pool limits, proxies) and closes it, so ``aclose`` has nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final

import httpx

from backend.engines.base import GenerationRequest, TokenDelta, Usage, unsupported
from backend.engines.openai.chunks import ChunkParser, finish_reason
from backend.engines.openai.faults import UpstreamError
from backend.engines.openai.payload import build_payload
from backend.engines.openai.responses import ResponsesMode, ResponsesRelay
from backend.engines.openai.transport import UpstreamHTTP

logger = logging.getLogger(__name__)

DEFAULT_MODEL: Final = "gpt-4o-mini"


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
    """Relays a generation from an OpenAI-compatible ``/chat/completions`` upstream,
    and ``/v1/responses`` from its ``/responses`` when it speaks that API."""

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
        responses: ResponsesMode = "auto",
    ) -> None:
        """``model`` pins the model id served; otherwise ``refresh_models`` adopts
        the upstream's list (``DEFAULT_MODEL`` until then). ``responses``: whether
        the upstream speaks the Responses API (``auto``: ask it once)."""
        if not base_url:
            raise ValueError(
                "the openai engine needs an upstream: set SSECHAT_UPSTREAM_URL "
                "(or --upstream-url), e.g. http://127.0.0.1:8080/v1"
            )
        self._http = UpstreamHTTP(
            client,
            base_url=base_url,
            api_key=api_key,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
        )
        self._faults = self._http.faults
        self._include_usage = include_usage
        self._configured_model = model
        self._models: tuple[str, ...] = (model or DEFAULT_MODEL,)
        self._responses = ResponsesRelay(self._http, responses)

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
        try:
            document = await self._http.get_json("/models")
            ids = tuple(str(item["id"]) for item in document["data"])
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

    # -- the ResponsesUpstream capability ---------------------------------------------
    async def speaks_responses(self) -> bool:
        return await self._responses.speaks()

    def responses_events(self, body: Mapping[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        return self._responses.events(body)

    # -- Chat Completions ---------------------------------------------------------------
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
        ``async with`` block, which closes the upstream response and its
        connection: the upstream sees the client go away and can stop generating.
        """
        payload = build_payload(request, include_usage=self._include_usage)
        parser = ChunkParser(self._faults)
        generated = 0
        finish: str | None = None
        stop_sequence: str | None = None
        usage: Usage | None = None
        saw_done = False
        saw_event = False
        try:
            async with self._http.post_events("/chat/completions", payload) as events:
                while True:
                    sse = await events.next()
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
        except UpstreamError as exc:
            self._keep_if_complete(finish, exc)

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


def _carries(delta: TokenDelta) -> bool:
    return bool(
        delta.text or delta.reasoning or delta.refusal or delta.tool_calls or delta.logprobs
    )

"""The UI's only way to the backend: an async httpx + httpx-sse client of the HTTP contract.

The backend and this module share nothing but the wire (DESIGN.md, "HTTP
contract"). Only this module parses SSE on the UI side.

Why each rule below exists:

- The status is checked before the body is parsed: a 4xx/5xx carries an
  OpenAI-style JSON error body, not an event stream, and the user should see
  the server's message rather than "wrong content type".
- The read timeout is longer than the server's keep-alive interval: a long
  silence between tokens (a slow model) is announced by ``: ping`` comments,
  and httpx's default 5 s would cut a healthy stream.
- Events with empty data and no event name are dropped: the WHATWG parser
  ("Parsing an event stream", dispatch step) never dispatches an empty data
  buffer, and httpx-sse does dispatch one after a comment once an id was seen
  (httpx-sse issue #35) or for a ``retry:``-only block.
- httpx-sse does not reconnect. The spec's reconnection model is replayed
  here: remember the last event id, wait the ``retry:`` delay, re-attach at
  ``GET /v1/chat/completions/{id}/events`` with ``Last-Event-ID``. The server
  replays only events after that id; ids are still checked (duplicates are
  skipped, a gap is an error), so text is never doubled nor silently lost.
- Stop is a request to the server (``POST .../cancel``), then the connection
  is closed: closing alone would leave the generation running until the
  server's resume grace period ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError, aconnect_sse

__all__ = [
    "Answer",
    "AnswerMetrics",
    "BackendHTTPError",
    "BackendUnreachableError",
    "ChatClient",
    "ChatClientError",
    "ChatRequest",
    "ChatStream",
    "ConnectionLostError",
    "Delta",
    "RawEvent",
    "StreamEventError",
    "Usage",
    "make_http_client",
]

logger = logging.getLogger(__name__)

COMPLETIONS_PATH = "/v1/chat/completions"
DEFAULT_READ_TIMEOUT_S = 60.0  # > the backend's default keep-alive (15 s), with margin
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_MAX_RECONNECTS = 5  # consecutive re-attaches that bring no new event
DEFAULT_RETRY_S = 1.0  # the spec leaves the initial reconnection time to the UA; browsers use ~3 s
MAX_RETRY_S = 30.0  # a hostile or buggy retry: value must not park the UI for hours
DONE = "[DONE]"


# --------------------------------------------------------------------------- errors


class ChatClientError(Exception):
    """Base of everything this client raises; ``message`` is fit for a user to read."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackendUnreachableError(ChatClientError):
    """No HTTP response at all (connection refused, DNS, timeout before headers)."""


class BackendHTTPError(ChatClientError):
    """A 4xx/5xx response; carries the server's OpenAI-style error fields."""

    def __init__(
        self, status_code: int, message: str, error_type: str | None, code: str | None
    ) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.server_message = message
        self.error_type = error_type
        self.code = code


class StreamEventError(ChatClientError):
    """The server reported an error inside the stream (``data: {"error": …}``)."""

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


# --------------------------------------------------------------------------- data


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """An OpenAI chat completion request; ``None`` fields are left to the server."""

    messages: Sequence[Mapping[str, str]]
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    seed: int | None = None

    def body(self, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": [dict(m) for m in self.messages],
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        for name in ("model", "temperature", "top_p", "max_tokens", "seed"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body


@dataclass(frozen=True, slots=True)
class RawEvent:
    """One dispatched SSE event as it arrived (for the Inspector)."""

    id: str
    event: str
    data: str
    t_s: float  # arrival, seconds since the request was sent
    connection: int  # 0 = the original response, n = the n-th resume


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class AnswerMetrics:
    """Per-answer timings, all measured on the client.

    ``tokens_per_s`` is the arrival rate once text flows, ``(n - 1) / (t_last
    - t_first)`` over token-bearing chunks, so it does not mix in the time to
    first token. ``token_times_s`` (arrival of each token-bearing chunk) is the
    timeline plot's data.
    """

    ttft_s: float | None
    tokens: int
    tokens_per_s: float | None
    duration_s: float
    reconnects: int
    finish_reason: str | None
    token_times_s: tuple[float, ...]
    streamed: bool


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of answer text, as soon as it arrived."""

    text: str
    t_s: float


@dataclass(frozen=True, slots=True)
class Answer:
    """The whole answer: ``ChatStream``'s last item, or ``ChatClient.complete``'s result."""

    text: str
    stream_id: str | None
    model: str | None
    metrics: AnswerMetrics
    events: tuple[RawEvent, ...]
    usage: Usage | None = None
    cancelled: bool = False


# --------------------------------------------------------------------------- helpers


def make_http_client(
    base_url: str,
    *,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` suited to this client (base URL, SSE-friendly timeouts)."""
    timeout = httpx.Timeout(connect_timeout_s, read=read_timeout_s)
    # Many parallel streams (Compare, several users): lift httpx's default pool of 100 keep-alive
    # connections only for concurrency; keep-alive count is fine as is.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=20)
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"), timeout=timeout, limits=limits, transport=transport
    )


def _error_fields(body: bytes, fallback: str) -> tuple[str, str | None, str | None]:
    """The OpenAI-style ``{"error": {message, type, code}}`` of a response, tolerantly."""
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
                _opt_str(error.get("type")),
                _opt_str(error.get("code")),
            )
        if isinstance(error, str):
            return error, None, None
        detail = payload.get("detail")  # FastAPI's default error shape
        if detail is not None:
            return (detail if isinstance(detail, str) else json.dumps(detail)), None, None
    return fallback, None, None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


async def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    body = await response.aread()
    reason = response.reason_phrase or "error"
    message, error_type, code = _error_fields(body, reason)
    raise BackendHTTPError(response.status_code, message, error_type, code)


def _seq(event_id: str) -> int | None:
    """The numeric sequence of an SSE id, if it is one (our backend numbers 1, 2, 3 …)."""
    return int(event_id) if event_id.isdigit() else None


def _usage(value: object) -> Usage | None:
    if not isinstance(value, dict):
        return None
    try:
        return Usage(
            prompt_tokens=int(value.get("prompt_tokens", 0)),
            completion_tokens=int(value.get("completion_tokens", 0)),
            total_tokens=int(value.get("total_tokens", 0)),
        )
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- the stream


class ChatStream:
    """One streamed answer: an async iterator of ``Delta`` … then exactly one ``Answer``.

    Use as ``async with client.stream_chat(request) as stream: async for item in stream``.
    Leaving the ``async with`` before the answer is complete (break, exception,
    task cancellation such as Gradio's Stop) cancels the generation on the server.
    """

    def __init__(self, client: ChatClient, request: ChatRequest) -> None:
        self._client = client
        self._request = request
        self.stream_id: str | None = None
        self._finished = False
        self._cancel_sent = False
        self._response: httpx.Response | None = None
        self._iterator: AsyncGenerator[Delta | Answer, None] | None = None
        # Accumulated state, also used for the partial Answer carried by errors.
        self._started = time.perf_counter()
        self._parts: list[str] = []
        self._events: list[RawEvent] = []
        self._token_times: list[float] = []
        self._ttft: float | None = None
        self._usage: Usage | None = None
        self._finish_reason: str | None = None
        self._model: str | None = None
        self._connection = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncGenerator[Delta | Answer, None]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    @property
    def finished(self) -> bool:
        return self._finished

    def snapshot(self) -> Answer:
        """What has arrived so far (text, metrics, events), e.g. after Stop."""
        return self._answer()

    async def cancel(self) -> None:
        """Stop the generation on the server, then close our connection."""
        if not (self._finished or self._cancel_sent):
            self._cancel_sent = True
            if self.stream_id is not None:
                try:
                    await self._client.cancel(self.stream_id)
                except ChatClientError as exc:
                    # Finished or expired on the server meanwhile: nothing left to stop.
                    logger.info("cancel of %s: %s", self.stream_id, exc.message)
        await self._close_response()

    async def aclose(self) -> None:
        """Release the stream; an unfinished answer is cancelled on the server first."""
        if not self._finished and not self._cancel_sent and self.stream_id is not None:
            # Shielded: this usually runs while the surrounding task is being cancelled
            # (Gradio's Stop), and the cancel request must still reach the server.
            await asyncio.shield(self.cancel())
        await self._close_response()
        if self._iterator is not None:
            await self._iterator.aclose()

    async def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            await response.aclose()

    def _now(self) -> float:
        return time.perf_counter() - self._started

    def _answer(self) -> Answer:
        times = self._token_times
        rate = None
        if len(times) >= 2 and times[-1] > times[0]:
            rate = (len(times) - 1) / (times[-1] - times[0])
        return Answer(
            text="".join(self._parts),
            stream_id=self.stream_id,
            model=self._model,
            metrics=AnswerMetrics(
                ttft_s=self._ttft,
                tokens=self._usage.completion_tokens if self._usage else len(times),
                tokens_per_s=rate,
                duration_s=self._now(),
                reconnects=self._connection,
                finish_reason=self._finish_reason,
                token_times_s=tuple(times),
                streamed=True,
            ),
            events=tuple(self._events),
            usage=self._usage,
            cancelled=self._cancel_sent or self._finish_reason == "cancelled",
        )

    def _connect(self, last_id: str | None) -> AbstractAsyncContextManager[EventSource]:
        client = self._client
        headers = client.auth_headers()
        if last_id is None:
            return aconnect_sse(
                client.http,
                "POST",
                COMPLETIONS_PATH,
                json=self._request.body(stream=True),
                headers=headers,
                timeout=client.timeout,
            )
        headers["Last-Event-ID"] = last_id
        return aconnect_sse(
            client.http,
            "GET",
            f"{COMPLETIONS_PATH}/{self.stream_id}/events",
            headers=headers,
            timeout=client.timeout,
        )

    async def _run(self) -> AsyncGenerator[Delta | Answer, None]:
        self._started = time.perf_counter()
        last_id: str | None = None  # the spec's "last event ID buffer"
        retry_s = DEFAULT_RETRY_S
        idle_reconnects = 0  # consecutive re-attaches that brought no new event
        while True:
            progressed = False
            try:
                async with self._connect(last_id) as source:
                    self._response = source.response
                    await _raise_for_status(source.response)
                    if self.stream_id is None:
                        self.stream_id = source.response.headers.get("x-stream-id")
                    async for sse in source.aiter_sse():
                        if sse.retry is not None:
                            retry_s = min(sse.retry / 1000.0, MAX_RETRY_S)
                        if sse.id:
                            if last_id is not None and self._is_replayed(sse.id, last_id):
                                continue
                            last_id = sse.id
                        if not sse.data and sse.event == "message":
                            continue  # keep-alive artefact or a retry-only block
                        progressed = True
                        done, text = self._handle(sse)
                        if done:
                            self._finished = True
                            yield self._answer()
                            return
                        if text:
                            yield Delta(text, self._token_times[-1])
                reason = "the response ended before [DONE]"
            except SSEError as exc:  # not an event stream at all: resuming will not help
                raise ChatClientError(
                    f"the backend at {self._client.base_url} did not answer with an event "
                    f"stream ({exc})"
                ) from exc
            except (httpx.TransportError, httpx.StreamError) as exc:
                # StreamError: our own cancel() closed the response under the reader.
                reason = _describe(exc)
            finally:
                self._response = None
            # The connection is gone without [DONE].
            if self._cancel_sent:
                self._finished = True
                yield self._answer()
                return
            if self.stream_id is None:
                if not self._events:
                    raise BackendUnreachableError(
                        f"cannot reach the backend at {self._client.base_url} ({reason})"
                    )
                raise ConnectionLostError(
                    f"connection lost and the stream has no id to resume ({reason})",
                    self._answer(),
                )
            idle_reconnects = 0 if progressed else idle_reconnects + 1
            if idle_reconnects > self._client.max_reconnects:
                raise ConnectionLostError(
                    f"connection lost; {self._client.max_reconnects} reconnects brought "
                    f"nothing new ({reason})",
                    self._answer(),
                )
            self._connection += 1
            logger.info(
                "stream %s dropped (%s); resuming after id %s in %.2fs",
                self.stream_id,
                reason,
                last_id,
                retry_s,
            )
            await asyncio.sleep(retry_s)
            if last_id is None:
                last_id = "0"  # nothing arrived yet: replay from the first event

    def _is_replayed(self, event_id: str, last_id: str) -> bool:
        """True for an event we already have; raises on a gap (text would be lost)."""
        seq, last = _seq(event_id), _seq(last_id)
        if seq is None or last is None:
            return False
        if seq <= last:
            return True
        if seq != last + 1:
            raise ConnectionLostError(
                f"events lost in transit: expected id {last + 1}, got {seq}", self._answer()
            )
        return False

    def _handle(self, sse: ServerSentEvent) -> tuple[bool, str]:
        """Record one event; return (is [DONE], new text)."""
        now = self._now()
        self._events.append(RawEvent(sse.id, sse.event, sse.data, now, self._connection))
        if sse.data == DONE:
            return True, ""
        try:
            payload = json.loads(sse.data)
        except ValueError:
            logger.warning("ignoring non-JSON event data: %.80r", sse.data)
            return False, ""
        if not isinstance(payload, dict):
            return False, ""
        error = payload.get("error")
        if error is not None:
            fields = error if isinstance(error, dict) else {"message": str(error)}
            self._finish_reason = "error"
            self._finished = True  # the server ends the stream after an error event
            raise StreamEventError(
                str(fields.get("message") or "the server reported an error"),
                _opt_str(fields.get("type")),
                _opt_str(fields.get("code")),
                self._answer(),
            )
        if self.stream_id is None and isinstance(payload.get("id"), str):
            self.stream_id = payload["id"]
        if isinstance(payload.get("model"), str):
            self._model = payload["model"]
        usage = _usage(payload.get("usage"))
        if usage is not None:
            self._usage = usage
        pieces: list[str] = []
        for choice in payload.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta")
            content = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(content, str) and content:
                pieces.append(content)
            if choice.get("finish_reason"):
                self._finish_reason = str(choice["finish_reason"])
        text = "".join(pieces)
        if text:
            if self._ttft is None:
                self._ttft = now
            self._token_times.append(now)
            self._parts.append(text)
        return False, text


# --------------------------------------------------------------------------- the client


@dataclass
class ChatClient:
    """Client of the ssechat HTTP API. The ``httpx.AsyncClient`` is injected (its base URL set).

    ``read_timeout_s`` must exceed the server's keep-alive interval
    (``SSECHAT_KEEPALIVE_S``, 15 s by default); it is applied per request, so
    an injected client with httpx's 5 s default still works.
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

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def stream_chat(self, request: ChatRequest) -> ChatStream:
        """Start streaming an answer (the request is sent on first iteration)."""
        return ChatStream(self, request)

    async def complete(self, request: ChatRequest) -> Answer:
        """The same request with ``stream: false``: one JSON answer (Compare's baseline)."""
        started = time.perf_counter()
        response = await self._request("POST", COMPLETIONS_PATH, json=request.body(stream=False))
        duration = time.perf_counter() - started
        payload = _json_object(response)
        choices = payload.get("choices") or []
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        message = first.get("message") or {}
        text = message.get("content") if isinstance(message, dict) else None
        usage = _usage(payload.get("usage"))
        text = text if isinstance(text, str) else ""
        tokens = usage.completion_tokens if usage else 0
        return Answer(
            text=text,
            stream_id=_opt_str(payload.get("id")),
            model=_opt_str(payload.get("model")),
            metrics=AnswerMetrics(
                ttft_s=duration if text else None,  # nothing is visible until the whole body is
                tokens=tokens,
                tokens_per_s=(tokens / duration) if tokens and duration > 0 else None,
                duration_s=duration,
                reconnects=0,
                finish_reason=_opt_str(first.get("finish_reason")),
                token_times_s=(),
                streamed=False,
            ),
            events=(),
            usage=usage,
        )

    async def models(self) -> list[str]:
        """Model ids from ``GET /v1/models``."""
        payload = _json_object(await self._request("GET", "/v1/models"))
        data = payload.get("data") or []
        return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]

    async def health(self) -> dict[str, Any]:
        """``GET /healthz`` as a dict (status, engine, model, hub, …)."""
        return _json_object(await self._request("GET", "/healthz"))

    async def cancel(self, stream_id: str) -> None:
        """``POST /v1/chat/completions/{id}/cancel``."""
        await self._request("POST", f"{COMPLETIONS_PATH}/{stream_id}/cancel")

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self.http.request(
                method, path, headers=self.auth_headers(), timeout=self.timeout, **kwargs
            )
        except httpx.TimeoutException as exc:
            raise BackendUnreachableError(
                f"the backend at {self.base_url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise BackendUnreachableError(
                f"cannot reach the backend at {self.base_url} ({_describe(exc)})"
            ) from exc
        await _raise_for_status(response)
        return response


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError as exc:
        raise ChatClientError(f"the backend sent invalid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ChatClientError("the backend sent JSON that is not an object")
    return payload

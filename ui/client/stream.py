"""The one reconnect loop: one streamed answer in any dialect, resumed after drops.

Why each rule below exists:

- The status is checked before the body is parsed (see ``ui.client.errors``).
  A 204 on a resume means the stream already ended on the server (its final
  event is behind us): the answer is finished with what arrived.
- The read timeout is longer than the server's keep-alive interval: a long
  silence between tokens is announced by keep-alives (``: ping`` comments or
  ``event: ping``), and httpx's default 5 s would cut a healthy stream.
- Events with empty data and no event name are dropped: the WHATWG parser
  never dispatches an empty data buffer, and httpx-sse does dispatch one
  after a comment once an id was seen (httpx-sse issue #35) or for a
  ``retry:``-only block.
- httpx-sse does not reconnect. The spec's reconnection model is replayed
  here: remember the last event id, wait the ``retry:`` delay, re-attach at
  the dialect's resume route. The server replays only events after that id;
  ids are still checked (duplicates are skipped, a gap is an error), so text
  is never doubled nor silently lost.
- Stop is a request to the server (the dialect's cancel route), then the
  connection is closed: closing alone would leave the generation running
  until the server's resume grace period ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Self

import httpx
from httpx_sse import EventSource, ServerSentEvent, SSEError, aconnect_sse

from ui.client.builder import AnswerBuilder
from ui.client.dialect import Dialect, EventParser, dialect_for
from ui.client.errors import (
    BackendUnreachableError,
    ChatClientError,
    ConnectionLostError,
    StreamEventError,
    describe,
    raise_for_status,
)
from ui.client.models import Answer, ChatRequest, Delta, RawEvent

if TYPE_CHECKING:
    from ui.client.api import ChatClient

__all__ = ["DEFAULT_RETRY_S", "MAX_RETRY_S", "ChatStream"]

logger = logging.getLogger(__name__)

DEFAULT_RETRY_S = 1.0  # the spec leaves the initial reconnection time to the UA; browsers use ~3 s
MAX_RETRY_S = 30.0  # a hostile or buggy retry: value must not park the UI for hours


def _seq(event_id: str) -> int | None:
    """The numeric sequence of an SSE id, if it is one (our backend numbers 1, 2, 3 …)."""
    return int(event_id) if event_id.isdigit() else None


class ChatStream:
    """One streamed answer: an async iterator of ``Delta`` … then exactly one ``Answer``.

    Use as ``async with client.stream_chat(request) as stream: async for item in stream``.
    Leaving the ``async with`` before the answer is complete (break, exception,
    task cancellation such as Gradio's Stop) cancels the generation on the server.
    ``cancel()`` from another task ends the iteration with the stopped answer
    (``cancelled`` set, ``finish_reason`` ``cancelled``).
    """

    def __init__(self, client: ChatClient, request: ChatRequest) -> None:
        self._client = client
        self._request = request
        self.dialect: Dialect = dialect_for(request.dialect)
        self._finished = False
        self._cancel_sent = False
        self._server_cancelled = False
        self._response: httpx.Response | None = None
        self._iterator: AsyncGenerator[Delta | Answer, None] | None = None
        self._started = time.perf_counter()
        self._built = AnswerBuilder(request.dialect)

    @property
    def stream_id(self) -> str | None:
        return self._built.stream_id

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
        """Stop the generation on the server, then close our connection.

        Before the server has named the stream (no response yet) the request is
        remembered: the reconnect loop sends it as soon as the id is known.
        """
        if not (self._finished or self._cancel_sent):
            self._cancel_sent = True
            self._built.cancelled = True
            await self._cancel_on_server()
        await self._close_response()

    async def _cancel_on_server(self) -> None:
        if self.stream_id is None or self._server_cancelled:
            return
        self._server_cancelled = True
        try:
            await self._client.cancel(self.stream_id, dialect=self._request.dialect)
        except ChatClientError as exc:
            # Finished or expired on the server meanwhile: nothing left to stop.
            logger.info("cancel of %s: %s", self.stream_id, exc.message)

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
        return self._built.answer(self._now())

    def _connect(self, last_id: str | None) -> AbstractAsyncContextManager[EventSource]:
        client = self._client
        headers = self.dialect.auth_headers(client.api_key)
        if last_id is None:
            call = self.dialect.start(self._request, stream=True)
        else:
            assert self.stream_id is not None
            call = self.dialect.resume(self.stream_id, last_id)
        headers.update(call.headers)
        return aconnect_sse(
            client.http,
            call.method,
            call.path,
            json=call.json,
            params=dict(call.params) or None,
            headers=headers,
            timeout=client.timeout,
        )

    def _finish(self) -> Answer:
        self._finished = True
        return self._answer()

    async def _run(self) -> AsyncGenerator[Delta | Answer, None]:
        self._started = time.perf_counter()
        if self._cancel_sent:  # stopped before it began: nothing to ask the server
            yield self._finish()
            return
        parser = self.dialect.parser()
        last_id: str | None = None  # the spec's "last event ID buffer"
        retry_s = DEFAULT_RETRY_S
        idle_reconnects = 0  # consecutive re-attaches that brought no new event
        while True:
            progressed = False
            try:
                async with self._connect(last_id) as source:
                    response = source.response
                    self._response = response
                    if response.status_code == 204 and last_id is not None:
                        yield self._finish()  # the final event was already sent
                        return
                    await raise_for_status(response)
                    if self._built.stream_id is None:
                        self._built.stream_id = response.headers.get("x-stream-id")
                    # Stopped while connecting: no events; the cancel goes out below,
                    # now that the server has named the stream.
                    if not self._cancel_sent:
                        async for sse in source.aiter_sse():
                            if self._cancel_sent:
                                break  # stopped: what is still in flight is not the answer
                            if sse.retry is not None:
                                retry_s = min(sse.retry / 1000.0, MAX_RETRY_S)
                            if sse.id:
                                if last_id is not None and self._is_replayed(sse.id, last_id):
                                    continue
                                last_id = sse.id
                            if not sse.data and sse.event == "message":
                                continue  # keep-alive artefact or a retry-only block
                            progressed = True
                            done, deltas = self._handle(parser, sse)
                            for delta in deltas:
                                yield delta
                            if done:
                                yield self._finish()
                                return
                reason = "the response ended before the stream's final event"
            except SSEError as exc:  # not an event stream at all: resuming will not help
                raise ChatClientError(
                    f"the backend at {self._client.base_url} did not answer with an event "
                    f"stream ({exc})"
                ) from exc
            except (httpx.TransportError, httpx.StreamError) as exc:
                # StreamError: our own cancel() closed the response under the reader.
                reason = describe(exc)
            finally:
                self._response = None
            # The connection is gone without the final event.
            if self._cancel_sent:
                await self._cancel_on_server()  # a no-op unless stopped before the id was known
                yield self._finish()
                return
            if self.stream_id is None:
                if not self._built.has_events:
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
            self._built.connection += 1
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

    def _handle(self, parser: EventParser, sse: ServerSentEvent) -> tuple[bool, list[Delta]]:
        """Parse and record one event; return (is the final event, its deltas)."""
        now = self._now()
        parsed = parser.feed(sse.event, sse.data)
        deltas = self._built.add(parsed, now)
        text = "".join(piece.text for piece in parsed.pieces)
        self._built.record(
            RawEvent(sse.id, sse.event, sse.data, now, self._built.connection, parsed.kind, text)
        )
        if parsed.error is not None:
            self._finished = True  # the server ends the stream after an error event
            raise StreamEventError(
                parsed.error.message, parsed.error.type, parsed.error.code, self._answer()
            )
        return parsed.done, deltas

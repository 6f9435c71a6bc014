"""The SSE response: a hub subscription written to the socket through the encoder.

Neither ``fastapi.sse`` (which pays per event for its keep-alive machinery)
nor Starlette's ``StreamingResponse`` (an anyio task group and two tasks per
response, to race the body against ``http.disconnect``): ``SSEResponse`` is a
plain ASGI response that writes the body in the request's own task, told
of the disconnect by a callback from our protocol (or, under another server,
by one small task waiting on ``receive``). Keep-alive is the hub handing us an
empty batch after ``keepalive_s`` of silence, so a busy stream pays nothing
for it, and a burst of ready events goes out as one write. On disconnect the
body is cancelled at its current ``await``, and a flag is checked after
every send, so a cancellation swallowed where it landed cannot keep it
running; ``finally`` then detaches from the hub, which frees the generation
after its grace period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from backend.http.disconnect import on_disconnect
from backend.http.handoff import handoff_slot
from backend.hub.base import Event, HubError, StreamEvent, Subscription
from backend.metrics import Metrics
from backend.sse import KEEPALIVE_COMMENT, encode_batch, encode_event

# The dialect's in-band rendering of a hub failure: an error event, then the
# dialect's terminal event where it has one.
HubErrorEvents = Callable[[HubError], Sequence[Event]]

logger = logging.getLogger(__name__)

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx buffers responses unless told not to; a buffered SSE stream is a broken one.
    "X-Accel-Buffering": "no",
}


async def _body(
    subscription: Subscription,
    *,
    retry_ms: int | None,
    metrics: Metrics,
    hub_error_events: HubErrorEvents,
    keepalive: bytes = KEEPALIVE_COMMENT,
) -> AsyncGenerator[bytes, None]:
    metrics.active_responses += 1
    finished = False
    try:
        async for batch in subscription:
            if not batch:
                yield keepalive
                continue
            yield encode_batch(batch, retry_ms)
            retry_ms = None
            metrics.events_sent.inc(len(batch))
        # The hub ends the iteration after the stream's terminal event.
        finished = True
    except HubError as error:
        # The hub failed under us (e.g. Redis went away): the headers are out,
        # so report it in-band and end the stream properly.
        logger.warning("hub error mid-stream: %s", error.message)
        metrics.errors.inc(label_value=error.error_type)
        finished = True
        # No id: these events are not in the hub's numbering, so a client that
        # resumes later must not skip real events because of them.
        for name, data in hub_error_events(error):
            yield encode_event(data, event=name or None)
    finally:
        metrics.active_responses -= 1
        if not finished:
            metrics.client_disconnects.inc()
        await subscription.aclose()


class CutAfter:
    """Test-only fault (``SSECHAT_FAULT_CLOSE_AFTER_EVENTS``): the subscription ends
    after ``events`` events, mid-answer, so the response closes as if a flaky network
    dropped it. Wrapped around a subscription only when the switch is on, so it
    costs nothing per event otherwise."""

    def __init__(self, subscription: Subscription, events: int) -> None:
        self._subscription = subscription
        self._events = events

    def __aiter__(self) -> AsyncIterator[Sequence[StreamEvent]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[Sequence[StreamEvent]]:
        left = self._events
        async for batch in self._subscription:
            if batch and len(batch) >= left:
                yield batch[:left]
                logger.info("fault switch: closed the response after %d events", self._events)
                return
            left -= len(batch)
            yield batch

    async def aclose(self) -> None:
        await self._subscription.aclose()


class _BodyWriter:
    """Writes one SSE body: the status line, headers and first chunk (``start``), then
    the rest (``run``, maybe handed off to the outermost layer: backend/http/handoff.py).

    Told of the disconnect by a callback, it cancels the request's task at its
    current ``await``; that cancellation is the normal end of an SSE response
    and is swallowed here, where one from outside (server shutdown) is not.
    """

    __slots__ = ("_body", "_closed", "_stop_watching", "_task", "left")

    def __init__(self, body: AsyncGenerator[bytes, None], scope: Scope, receive: Receive) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._body = body
        self._closed = False
        self.left = False  # the client is gone
        self._stop_watching = on_disconnect(scope, receive, self._client_left)

    def _client_left(self) -> None:
        self.left = True
        self._task.cancel()

    def _ours(self) -> bool:
        """Whether the cancellation being handled is ours (the client left) alone."""
        if not self.left or self._task.cancelling() > 1:
            return False
        self._task.uncancel()
        return True

    async def start(self, send: Send, headers: list[tuple[bytes, bytes]]) -> bool:
        """Send the status, headers and first chunk; False when that was the whole response."""
        started = False
        try:
            # The headers wait for the first chunk: a resume with nothing left to
            # send (after the final event, or ahead of a stream that then ended)
            # is answered 204, the spec's "stop reconnecting" for EventSource.
            first = await anext(self._body, None)
            if first is None:
                self._stop_watching()
                await send({"type": "http.response.start", "status": 204, "headers": []})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": first, "more_body": True})
                started = not self.left
        except asyncio.CancelledError:
            if not self._ours():
                raise
        finally:
            if not started:
                await self.abandon()
        return started

    async def run(self, send: Send) -> None:
        try:
            async for chunk in self._body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                # The cancellation can be swallowed where it lands (asyncio.wait_for
                # returning a result that came at the same moment, CPython gh-86296;
                # redis-py uses it), and once the client is gone send() is a silent
                # no-op: this check ends the body at its next send, which the hub's
                # keep-alive bounds. Cancelling again instead would interrupt the
                # body's clean-up (detaching from the hub can be a Redis round trip).
                if self.left:
                    break
            else:
                self._stop_watching()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not self._ours():
                raise
        finally:
            await self.abandon()

    async def abandon(self) -> None:
        """Stop watching and close the body (detaching from the hub); once."""
        if self._closed:
            return
        self._closed = True
        self._stop_watching()
        if self.left and self._task.cancelling():  # ours was swallowed on the way: drop it
            self._task.uncancel()
        await self._body.aclose()


class SSEResponse(Response):
    """A ``text/event-stream`` response whose body is an async iterator of bytes.

    Once started, it hands the rest of the body off to the app's outermost
    layer when there is one (``StreamHandoff``), so an open stream holds none
    of the framework's per-request state and its events skip every layer's
    ``send`` wrapper.
    """

    media_type = "text/event-stream; charset=utf-8"

    def __init__(self, body: AsyncGenerator[bytes, None], headers: Mapping[str, str]) -> None:
        self.status_code = 200
        self.background = None
        self._body_iterator = body
        self.init_headers(headers)  # no body attribute: no Content-Length, chunked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        writer = _BodyWriter(self._body_iterator, scope, receive)
        del self._body_iterator  # the writer owns it now
        if not await writer.start(send, self.raw_headers):
            return
        slot = handoff_slot(scope)
        if slot is not None:
            slot.rest = writer
            return
        await writer.run(send)


def sse_response(
    subscription: Subscription,
    *,
    stream_id: str,
    retry_ms: int | None,
    metrics: Metrics,
    hub_error_events: HubErrorEvents,
    close_after_events: int = 0,
    keepalive: bytes = KEEPALIVE_COMMENT,
) -> SSEResponse:
    """``keepalive``: what an idle stream sends (a comment, or the dialect's own
    ping event, written without an id: it is not one of the stream's events)."""
    if close_after_events:
        subscription = CutAfter(subscription, close_after_events)
    return SSEResponse(
        _body(
            subscription,
            retry_ms=retry_ms,
            metrics=metrics,
            hub_error_events=hub_error_events,
            keepalive=keepalive,
        ),
        headers={**SSE_HEADERS, "X-Stream-Id": stream_id},
    )

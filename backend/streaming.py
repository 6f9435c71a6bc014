"""The SSE response: a hub subscription written to the socket through the encoder.

Built on Starlette's ``StreamingResponse`` (not ``fastapi.sse``, which pays
per event for its keep-alive machinery): keep-alive here is the hub
handing us an empty batch after ``keepalive_s`` of silence, so a busy
stream pays nothing for it, and a burst of ready events goes out as one
write. Starlette watches ``http.disconnect`` and cancels this body at its
current ``await``; ``finally`` then detaches from the hub.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse

from backend.completions import error_payload
from backend.hub.base import HubError, Subscription
from backend.metrics import Metrics
from backend.sse import DONE, KEEPALIVE_COMMENT, encode_batch, encode_event, is_done

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
    close_after_events: int,
) -> AsyncIterator[bytes]:
    metrics.active_responses += 1
    finished = False
    sent = 0
    try:
        async for batch in subscription:
            if not batch:
                yield KEEPALIVE_COMMENT
                continue
            if close_after_events and sent + len(batch) >= close_after_events:
                # Test-only fault: drop the connection mid-answer, as a flaky network would.
                batch = batch[: close_after_events - sent]
                yield encode_batch(((event.seq, event.data) for event in batch), retry_ms)
                metrics.events_sent.inc(len(batch))
                finished = True
                logger.info("fault switch: closed the response after %d events", sent + len(batch))
                return
            yield encode_batch(((event.seq, event.data) for event in batch), retry_ms)
            retry_ms = None
            sent += len(batch)
            metrics.events_sent.inc(len(batch))
            if is_done(batch[-1].data):
                finished = True
                return
    except HubError as error:
        # The hub failed under us (e.g. Redis went away): the headers are out,
        # so report it in-band and end the stream properly.
        logger.warning("hub error mid-stream: %s", error.message)
        metrics.errors.inc(label_value=error.error_type)
        finished = True
        yield encode_error_event(error_payload(error.message, error.error_type))
        yield encode_error_event(DONE)
    finally:
        metrics.active_responses -= 1
        if not finished:
            metrics.client_disconnects.inc()
        await subscription.aclose()


def encode_error_event(data: str) -> bytes:
    # No id: these events are not in the hub's numbering, so a client resuming
    # later must not skip real events because of them.
    return encode_event(data)


def sse_response(
    subscription: Subscription,
    *,
    stream_id: str,
    retry_ms: int | None,
    metrics: Metrics,
    close_after_events: int = 0,
) -> StreamingResponse:
    return StreamingResponse(
        _body(
            subscription,
            retry_ms=retry_ms,
            metrics=metrics,
            close_after_events=close_after_events,
        ),
        media_type="text/event-stream; charset=utf-8",
        headers={**SSE_HEADERS, "X-Stream-Id": stream_id},
    )

"""An SSE response notices its client left, however the cancellation lands.

On disconnect the response cancels its body; but a cancellation can be
swallowed where it lands (``asyncio.wait_for`` returning a result that
arrived at the same moment, CPython gh-86296; redis-py uses it), and once
the client is gone uvicorn's ``send`` is a silent no-op, so nothing else
would stop the body. These subscriptions swallow cancellations on purpose;
the response must still end and detach (``aclose``), which is what frees
the generation: at its next send at the latest, which the hub's keep-alive
bounds. Served by uvicorn on a real socket, through its own protocol (the
response watches ``receive``) and through ours (the protocol calls back),
with the body streamed where the response was called and handed off to the
outermost layer (``StreamHandoff``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from backend.http.handoff import StreamHandoff
from backend.http.protocol import GuardedHttpProtocol
from backend.hub.base import HubError, StreamEvent
from backend.metrics import Metrics
from backend.streaming import sse_response
from tests.backend.http.raw import connect, wait_until
from tests.servers import serve_app


class SwallowingSubscription:
    """One event at once, then every ``wait_s`` an event (or a keep-alive: an empty
    batch); cancellations landing while it waits are swallowed (the first, or all)."""

    def __init__(self, wait_s: float, *, swallow_all: bool, keepalive: bool) -> None:
        self.wait_s = wait_s
        self.swallow_all = swallow_all
        self.keepalive = keepalive
        self.swallowed = 0
        self.closed = threading.Event()

    def __aiter__(self) -> AsyncIterator[Sequence[StreamEvent]]:
        return self._batches()

    async def _batches(self) -> AsyncIterator[Sequence[StreamEvent]]:
        seq = 1
        yield [StreamEvent(seq, "", "first")]
        while True:
            try:
                await asyncio.sleep(self.wait_s)
            except asyncio.CancelledError:
                if self.swallowed and not self.swallow_all:
                    raise
                self.swallowed += 1  # as wait_for does: no uncancel, no re-raise
                continue
            if self.keepalive:
                yield []
            else:
                seq += 1
                yield [StreamEvent(seq, "", f"event {seq}")]

    async def aclose(self) -> None:
        self.closed.set()


def no_error_events(_error: HubError) -> Sequence[tuple[str, str]]:
    return []


def app_for(subscription: SwallowingSubscription) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        response = sse_response(
            subscription,
            stream_id="s",
            retry_ms=None,
            metrics=Metrics(),
            hub_error_events=no_error_events,
        )
        await response(scope, receive, send)

    return app


@pytest.mark.parametrize(
    ("wait_s", "swallow_all", "keepalive"),
    [
        # Nothing to send after the swallowed cancellation but keep-alives.
        pytest.param(0.2, False, True, id="keepalive-after-one-swallowed"),
        # Events keep coming and every cancellation is swallowed.
        pytest.param(0.01, True, False, id="flowing-every-cancel-swallowed"),
    ],
)
@pytest.mark.parametrize("http", ["httptools", GuardedHttpProtocol], ids=["uvicorn", "guarded"])
@pytest.mark.parametrize("handoff", [False, True], ids=["in-place", "handed-off"])
def test_a_departed_client_s_response_ends_however_the_cancel_lands(
    wait_s: float, swallow_all: bool, keepalive: bool, http: object, handoff: bool
) -> None:
    subscription = SwallowingSubscription(wait_s, swallow_all=swallow_all, keepalive=keepalive)
    app = app_for(subscription)
    if handoff:  # the rest of the body goes out from the outermost layer, as in our app
        app = StreamHandoff(app)
    with serve_app(app, lifespan="off", http=http) as base_url:
        sock = connect(base_url)
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"data: first\n\n" not in received:
            received += sock.recv(65536)
        sock.close()
        wait_until(subscription.closed.is_set, 10, "the response to end and detach")
    if not swallow_all:
        assert subscription.swallowed == 1  # the case under test did happen

"""Await work for a request, and cancel it when the client goes away.

A non-streaming completion runs inside its request's task: if the client
leaves, nothing would stop it until the engine finishes, and it would hold
its concurrency slot all that time. ``cancel_on_disconnect`` runs the work
beside a watcher on the ASGI ``receive`` channel; ``http.disconnect`` cancels
the work and raises ``ClientDisconnected`` (an HTTP 499, "client closed
request", as nginx logs it: the answer goes nowhere, but the access log and
the error handlers see a normal HTTP error, not a traceback).

Call it once the request body has been read: the watcher consumes what
``receive`` yields.

A response that streams for minutes holds its watcher all that time (a
task, its coroutine and context, the waiter on ``receive``): per open
stream, that is memory. ``on_disconnect`` asks for a callback instead. Our
protocol (``GuardedHttpProtocol``) puts a ``DisconnectSignal`` in each
request's scope (``scope["extensions"]["ssechat.disconnect"]``) and fires it
where uvicorn marks the request disconnected; under any other server
(Granian, plain uvicorn) ``on_disconnect`` falls back to a task on
``receive``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope
from uvicorn.protocols.http.flow_control import FlowControl

__all__ = [
    "DISCONNECT_EXTENSION",
    "ClientDisconnected",
    "DisconnectSignal",
    "cancel_on_disconnect",
    "on_disconnect",
]

DISCONNECT_EXTENSION = "ssechat.disconnect"

T = TypeVar("T")


class ClientDisconnected(HTTPException):
    def __init__(self) -> None:
        super().__init__(499, "Client closed the request.")


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class DisconnectSignal:
    """One request's "the client is gone", told by the protocol to one watcher."""

    __slots__ = ("_callback", "_flow", "gone")

    def __init__(self, flow: FlowControl) -> None:
        self._flow = flow
        self._callback: Callable[[], None] | None = None
        self.gone = False

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when the client goes (now, if it has gone already)."""
        # What receive() does before it waits: reading may be paused (a large
        # body, a pipelined request), and a paused connection never sees a close.
        self._flow.resume_reading()
        if self.gone:
            callback()
            return
        self._callback = callback

    def unwatch(self) -> None:
        self._callback = None

    def fire(self) -> None:
        """The protocol's call: the client is gone."""
        self.gone = True
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()


def on_disconnect(
    scope: Scope, receive: Receive, callback: Callable[[], None]
) -> Callable[[], None]:
    """Call ``callback`` once the client is gone; returns the function that stops
    watching. Like ``cancel_on_disconnect``, only once the request body has been read."""
    extensions = scope.get("extensions")
    signal = extensions.get(DISCONNECT_EXTENSION) if extensions else None
    if isinstance(signal, DisconnectSignal):
        signal.watch(callback)
        return signal.unwatch

    async def watch() -> None:
        await _disconnected(receive)
        callback()

    task = asyncio.create_task(watch())

    def stop() -> None:
        task.cancel()

    return stop


async def cancel_on_disconnect(receive: Receive, work: Awaitable[T]) -> T:
    """``await work``, unless the client disconnects first: then cancel it and raise
    ``ClientDisconnected``. Cancelling the caller cancels the work too."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            # The work's own clean-up (engine streams, upstream connections) runs
            # before we return; its CancelledError is the expected outcome.
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if task.cancelled():
        raise ClientDisconnected
    return task.result()

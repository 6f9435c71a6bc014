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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.exceptions import HTTPException
from starlette.types import Receive

__all__ = ["ClientDisconnected", "cancel_on_disconnect"]

T = TypeVar("T")


class ClientDisconnected(HTTPException):
    def __init__(self) -> None:
        super().__init__(499, "Client closed the request.")


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


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

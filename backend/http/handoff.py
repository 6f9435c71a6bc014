"""The rest of a long response, written from the outermost layer once the framework returns.

An SSE response lives for minutes. Streamed where the route handler returned
it, it keeps every layer between the server and the route alive all that
time: the coroutine frames of FastAPI's request handler (its ``Request``, its
exit stacks), of Starlette's error and exception layers and of our
middlewares, each resumed again for every event the response writes, with
every event's ``send`` passing through each layer's wrapper. Those layers
have nothing left to do once the response has started: its status and
headers went through all of them (CORS decorates them, the error layers
note that it started), and the request body has been read.

So a response may hand off: ``StreamHandoff``, the outermost layer of the
app, puts a ``HandoffSlot`` in each HTTP request's scope; a response that
has started stores the rest of itself there (``Deferred``) and returns; the
layers unwind and free what they hold, ``StreamHandoff`` drops what they
added to the scope, and runs the rest with the server's own ``send`` (the
rest gets no scope: it registered what it needs while it started). Without
the slot (an app built some other way) a response streams where it is, as
any ASGI response does.

A layer that needed to see every body message would not get the handed-off
ones; none of ours does (no compression, no body rewriting), and a response
hands off only after its first body message went through the whole chain.
"""

from __future__ import annotations

from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HANDOFF_KEY", "Deferred", "HandoffSlot", "StreamHandoff", "handoff_slot"]

HANDOFF_KEY = "ssechat.handoff"


class Deferred(Protocol):
    """The rest of a started response."""

    async def run(self, send: Send) -> None:
        """Write the rest with ``send`` and release everything it holds."""

    async def abandon(self) -> None:
        """Release everything it holds without writing (the request failed on the way out)."""


class HandoffSlot:
    """Where a started response leaves the rest of itself, one per request."""

    __slots__ = ("rest",)

    def __init__(self) -> None:
        self.rest: Deferred | None = None


def handoff_slot(scope: Scope) -> HandoffSlot | None:
    slot = scope.get(HANDOFF_KEY)
    return slot if isinstance(slot, HandoffSlot) else None


class StreamHandoff:
    """The outermost ASGI layer: runs what a response handed off, after the app returned."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rest = await self._respond(scope, receive, send)
        if rest is not None:
            await rest.run(send)

    async def _respond(self, scope: Scope, receive: Receive, send: Send) -> Deferred | None:
        """Run the app; return what a response handed off, if one did (a frame of its
        own: what it needed is not held while the rest streams)."""
        given = tuple(scope)  # the keys the server and the outer layers put in
        slot = HandoffSlot()
        scope[HANDOFF_KEY] = slot
        try:
            await self.app(scope, receive, send)
        except BaseException:
            # A layer failed after the response handed off: whatever the rest
            # holds (a hub subscription) must still be released.
            rest, slot.rest = slot.rest, None
            if rest is not None:
                await rest.abandon()
            raise
        rest, slot.rest = slot.rest, None
        if rest is not None:
            # What the layers added to the scope (FastAPI's exit stacks, the route,
            # its endpoint and parameters) is theirs and done with; the server's
            # connection holds the scope for the stream's whole life, so drop it,
            # and the table it grew (a dict does not shrink when keys go).
            kept = {key: scope[key] for key in given}
            scope.clear()
            scope.update(kept)
        return rest

"""Request body size limit, enforced before the body is read in full (pure ASGI)."""

from __future__ import annotations

from collections.abc import Awaitable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.http.replies import send_error


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so frameworks that wrap body-read
    errors (FastAPI turns other exceptions into a 400) let it through as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body exceeds {limit} bytes.")


class BodySizeLimit:
    """413 from ``Content-Length`` alone when it is declared, else while counting chunks.

    A body framed by a ``Content-Length`` within the limit (or, in HTTP/1, a
    request with neither ``Content-Length`` nor ``Transfer-Encoding``: no
    body) cannot grow past it, since the server hands the app exactly that
    many bytes: then ``receive`` and ``send`` go to the app untouched, so a
    streamed response pays no wrapper on each of its writes. Only the other
    bodies (chunked, or HTTP/2 without a length) are counted as they arrive.
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: it returns the app's (or the refusal's), so an
        # open stream holds no frame of this layer for its whole life.
        if scope["type"] != "http":
            return self.app(scope, receive, send)
        limit = self.max_body_bytes
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length > limit:
                    return _reject(send, scope["path"], limit)
                # Sent twice: the server's framing, not ours to trust; count instead.
                declared = length if declared is None else -1
            elif name == b"transfer-encoding":
                chunked = True
        framed = declared is not None and declared >= 0
        no_body = declared is None and scope.get("http_version") in ("1.0", "1.1")
        if not chunked and (framed or no_body):
            return self.app(scope, receive, send)
        return self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.max_body_bytes
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not response_started:
                await _reject(send, scope["path"], limit)


async def _reject(send: Send, path: str, limit: int) -> None:
    await send_error(
        send,
        path,
        413,
        f"Request body exceeds {limit} bytes.",
        "invalid_request_error",
        "request_too_large",
        close=True,
    )

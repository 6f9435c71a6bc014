"""Request body size limit, enforced before the body is read in full (pure ASGI)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.http.replies import send_error


class BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so frameworks that wrap body-read
    errors (FastAPI turns other exceptions into a 400) let it through as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body exceeds {limit} bytes.")


class BodySizeLimit:
    """413 from ``Content-Length`` alone when it is declared, else while counting chunks."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _reject(send, scope["path"], limit)
                    return
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

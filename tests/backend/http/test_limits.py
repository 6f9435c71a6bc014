"""The body-size limit wraps nothing when the server frames the body for it.

(413s through the whole app: tests/backend/test_api.py.)
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from backend.http.limits import BodySizeLimit
from tests.servers import serve_app

LIMIT = 1024


class Recorder:
    """Echoes the body it read; notes whether ``receive`` and ``send`` reached it as
    the server passed them to the middleware."""

    def __init__(self) -> None:
        self.outer: tuple[Receive, Send] | None = None
        self.untouched: list[bool] = []
        self.limited = BodySizeLimit(self._inner, max_body_bytes=LIMIT)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.outer = (receive, send)
        await self.limited(scope, receive, send)

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.untouched.append((receive, send) == self.outer)
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture
def served() -> Iterator[tuple[Recorder, httpx.Client]]:
    recorder = Recorder()
    with serve_app(recorder, lifespan="off") as url, httpx.Client(base_url=url) as client:
        yield recorder, client


def test_a_framed_body_or_none_passes_receive_and_send_untouched(
    served: tuple[Recorder, httpx.Client],
) -> None:
    recorder, client = served
    assert client.post("/", content=b"x" * LIMIT).content == b"x" * LIMIT
    assert client.get("/").status_code == 200
    assert recorder.untouched == [True, True]


def test_a_chunked_body_is_counted_and_refused_past_the_limit(
    served: tuple[Recorder, httpx.Client],
) -> None:
    recorder, client = served

    def chunks(total: int) -> Iterator[bytes]:  # no Content-Length: chunked
        for _ in range(total // 256):
            yield b"y" * 256

    assert client.post("/", content=chunks(LIMIT)).content == b"y" * LIMIT
    response = client.post("/", content=chunks(2 * LIMIT))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert recorder.untouched == [False, False]
    declared = client.post("/", content=b"z" * (LIMIT + 1))
    assert declared.status_code == 413  # refused before the app runs
    assert recorder.untouched == [False, False]

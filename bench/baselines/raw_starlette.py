"""The practical limit: Starlette's ``StreamingResponse`` yielding pre-built SSE bytes."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from bench.baselines.payload import PATH, SSE_HEADERS, load_payload


def build_app() -> Starlette:
    events = load_payload().sse_events()

    async def body() -> AsyncIterator[bytes]:
        for event in events:
            yield event

    async def completions(request: Request) -> Response:
        return StreamingResponse(
            body(), media_type="text/event-stream; charset=utf-8", headers=SSE_HEADERS
        )

    return Starlette(routes=[Route(PATH, completions, methods=["POST"])])

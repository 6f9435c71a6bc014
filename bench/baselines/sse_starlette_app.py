"""sse-starlette's ``EventSourceResponse`` (ids, ping task, disconnect watcher)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.baselines.payload import PATH, RETRY_MS, SSE_HEADERS, load_payload


def build_app() -> Starlette:
    data = load_payload().data

    async def events() -> AsyncIterator[dict[str, Any]]:
        # Dicts, as its README shows; it builds a ServerSentEvent with the response's sep.
        for seq, item in enumerate(data, start=1):
            event: dict[str, Any] = {"id": str(seq), "data": item}
            if seq == 1:
                event["retry"] = RETRY_MS
            yield event

    async def completions(request: Request) -> Response:
        # sep="\n": the same bytes per event as ours (its default is CRLF).
        return EventSourceResponse(events(), headers=SSE_HEADERS, ping=15, sep="\n")

    return Starlette(routes=[Route(PATH, completions, methods=["POST"])])

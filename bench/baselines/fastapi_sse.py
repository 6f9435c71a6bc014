"""FastAPI's built-in SSE: ``response_class=fastapi.sse.EventSourceResponse`` and ``yield``."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.sse import EventSourceResponse, ServerSentEvent

from bench.baselines.payload import PATH, RETRY_MS, load_payload


def build_app() -> FastAPI:
    data = load_payload().data
    app = FastAPI()

    # Like the other baselines it does not read the request body.
    @app.post(PATH, response_class=EventSourceResponse)
    async def completions() -> AsyncIterator[ServerSentEvent]:
        for seq, item in enumerate(data, start=1):
            # raw_data: the payload is already JSON text; data= would JSON-encode it again.
            yield ServerSentEvent(raw_data=item, id=str(seq), retry=RETRY_MS if seq == 1 else None)

    return app

"""A scripted backend on a real socket: the three dialects' byte fixtures (reasoning, tool
calls, text), served with pacing and a gate, so the UI's rendering of every delta kind is
tested in a real browser whatever the real engines stream yet.

The streams are the client tests' fixtures (``tests/ui/client``): exact bytes as
each dialect frames them. ``POST /scripted/release`` opens the gate a stream
waits at (after ``pause_after`` events), so a test can look at an answer
mid-stream without racing it. CORS is open so ``/demo`` can read it from
another origin, as with a remote backend.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.ui.client.test_chat import stream_events as chat_events
from tests.ui.client.test_messages import stream_events as messages_events
from tests.ui.client.test_responses import stream_events as responses_events

__all__ = ["MODEL", "STREAM_IDS", "ScriptedBackend"]

MODEL = "scripted-reasoner"
STREAM_IDS = {"chat": "chatcmpl-x", "responses": "resp_abc", "messages": "msg_1"}
_EVENTS: dict[str, Callable[[], list[bytes]]] = {
    "chat": chat_events,
    "responses": responses_events,
    "messages": messages_events,
}


@dataclass
class ScriptedBackend:
    """``pause_after``: events sent before a stream waits for ``/scripted/release``."""

    pause_after: int | None = None
    pace_s: float = 0.05
    cancelled: list[str] = field(default_factory=list)
    started: int = 0
    _gate: asyncio.Event | None = None

    def gate(self) -> asyncio.Event:
        if self._gate is None:  # made on the server's loop
            self._gate = asyncio.Event()
        return self._gate

    def app(self) -> Starlette:
        routes = [
            Route("/healthz", self.health),
            Route("/v1/models", self.models),
            Route("/v1/chat/completions", self.start("chat"), methods=["POST"]),
            Route("/v1/responses", self.start("responses"), methods=["POST"]),
            Route("/v1/messages", self.start("messages"), methods=["POST"]),
            Route("/v1/chat/completions/{sid}/events", self.attach("chat")),
            Route("/v1/responses/{sid}", self.attach("responses")),
            Route("/v1/messages/{sid}/events", self.attach("messages")),
            Route("/v1/chat/completions/{sid}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/responses/{sid}/cancel", self.cancel, methods=["POST"]),
            Route("/v1/messages/{sid}/cancel", self.cancel, methods=["POST"]),
            Route("/scripted/release", self.release, methods=["POST"]),
        ]
        cors = Middleware(
            CORSMiddleware,
            allow_origins=["*"],
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Stream-Id"],
        )
        return Starlette(routes=routes, middleware=[cors])

    async def health(self, request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "engine": "scripted",
                "model": MODEL,
                "models": [MODEL],
                "hub": "memory",
                "note": "",
            }
        )

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

    async def release(self, request: Request) -> Response:
        """Let the streams waiting at the gate go on; later streams wait at a new one."""
        gate, self._gate = self.gate(), asyncio.Event()
        gate.set()
        return JSONResponse({"released": True})

    async def cancel(self, request: Request) -> Response:
        self.cancelled.append(request.path_params["sid"])
        return JSONResponse({"id": request.path_params["sid"], "cancelled": True})

    def start(self, dialect: str) -> Callable[[Request], object]:
        async def handler(request: Request) -> Response:
            body = json.loads(await request.body())
            if not body.get("stream"):
                return JSONResponse({"error": {"message": "scripted: stream only"}}, 400)
            self.started += 1
            stream_id = f"{STREAM_IDS[dialect]}-{self.started}"
            return StreamingResponse(
                self._stream(dialect, stream_id),
                media_type="text/event-stream",
                headers={"X-Stream-Id": stream_id, "Cache-Control": "no-cache"},
            )

        return handler

    def attach(self, dialect: str) -> Callable[[Request], object]:
        """The resume route (what ``/demo``'s EventSource reads): events after the last id."""

        async def handler(request: Request) -> Response:
            last = request.headers.get("last-event-id") or request.query_params.get(
                "last_event_id", "0"
            )
            after = int(request.query_params.get("starting_after", "-1")) + 1  # Responses
            skip = max(int(last) if last.isdigit() else 0, after)
            return StreamingResponse(
                self._stream(dialect, request.path_params["sid"], skip=skip),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )

        return handler

    async def _stream(self, dialect: str, stream_id: str, skip: int = 0) -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        gate = self.gate()
        for index, event in enumerate(_EVENTS[dialect]()):
            if index < skip:
                continue
            if self.pause_after is not None and index == self.pause_after:
                await gate.wait()
            if stream_id in self.cancelled:
                return
            await asyncio.sleep(self.pace_s)
            yield event

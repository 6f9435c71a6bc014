"""The floor: a bare ASGI app that paces pre-built chat-chunk events, no framework.

Per stream it does what any server streaming at a fixed rate must do and
nothing else: one timer per token (``asyncio.sleep`` to the token's due
time) and one ``send`` of one pre-built event. The events are one response
of ours (``BENCH_PAYLOAD_FILE``, as every baseline): the role chunk at once,
token k at ``start + k / rate``, then the finish chunk and ``data: [DONE]``,
so bytes, event count and schedule are ours and only the work differs.
``BENCH_RATE`` is the token rate (tokens per second; 0 = no pacing).

``BENCH_FLOOR_TASKS=2`` (the "floor-relay" row): the same pacing in a producer
task that appends each event to a list and wakes the request's task through a
future, which writes what has gathered, the least a hub that separates the
generation from its readers costs.
"""

from __future__ import annotations

import asyncio
import os

from starlette.types import Message, Receive, Scope, Send

from bench.baselines.payload import PATH, SSE_HEADERS, load_payload

_NOT_FOUND: Message = {
    "type": "http.response.start",
    "status": 404,
    "headers": [(b"content-length", b"0")],
}


class Floor:
    """The ASGI app; ``events`` are the SSE events of one response, ``[DONE]`` last."""

    def __init__(self, events: tuple[bytes, ...], rate: float, *, relay: bool = False) -> None:
        if len(events) < 3:
            raise ValueError("a response has a role chunk, tokens, a finish chunk and [DONE]")
        self.first = events[0]
        self.tokens = events[1:-2]
        self.last = events[-2:]
        self.interval = 1 / rate if rate > 0 else 0.0
        self.relay = relay
        headers = {**SSE_HEADERS, "Content-Type": "text/event-stream; charset=utf-8"}
        self.start: Message = {
            "type": "http.response.start",
            "status": 200,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body", False):
            pass  # the request body: read, not parsed
        if scope["method"] != "POST" or scope["path"] != PATH:
            await send(_NOT_FOUND)
            await send({"type": "http.response.body", "body": b""})
            return
        await send(self.start)
        await send({"type": "http.response.body", "body": self.first, "more_body": True})
        if self.relay:
            await self._relay(send)
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index, event in enumerate(self.tokens):
            delay = started + index * self.interval - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        for event in self.last:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        ready: list[bytes] = []
        waiter: list[asyncio.Future[None]] = []

        def wake() -> None:
            if waiter:
                waiter.pop().set_result(None)

        async def produce() -> None:
            started = loop.time()
            for index, event in enumerate(self.tokens):
                delay = started + index * self.interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                ready.append(event)
                wake()
            ready.extend(self.last)
            ready.append(b"")
            wake()

        producer = asyncio.create_task(produce())
        while True:
            if not ready:
                waiter.append(loop.create_future())
                await waiter[0]
            batch = b"".join(ready)
            done = ready[-1] == b""
            ready.clear()
            await send({"type": "http.response.body", "body": batch, "more_body": not done})
            if done:
                break
        await producer


def build_app() -> Floor:
    relay = os.environ.get("BENCH_FLOOR_TASKS", "1") == "2"
    return Floor(
        load_payload().sse_events(), float(os.environ.get("BENCH_RATE", "20")), relay=relay
    )

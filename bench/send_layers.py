"""What each layer between an SSE response and the server adds to one ``send``.

Builds our app (``create_app``, default settings, or with API keys and CORS
origins), serves one request in process whose response, instead of
streaming, times ``await send(body message)`` in a loop: the ``send`` it is
handed goes through every middleware that wraps it on the way to the
server. The server's own ``send`` is a no-op coroutine here, so what is
timed is the layers alone. The layers are named by walking the closures
from the ``send`` the response got down to the server's.

Since the stream handoff (backend/http/handoff.py) an SSE response's events
after its first chunk go out past all of these layers, with the server's own
``send``; what this measures is what the status, the first chunk and every
other response still pay.

``python -m bench.send_layers``
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from backend.app import create_app
from backend.config import Settings

logger = logging.getLogger("bench.send_layers")

PATH = "/bench/send-layers"
_BODY: Message = {"type": "http.response.body", "body": b"x" * 260, "more_body": True}


def _inner_send(layer: Any) -> Any:
    """The ``send`` a wrapper calls: from its closure, or a partial's keywords."""
    if isinstance(layer, functools.partial):
        return layer.keywords.get("send")
    for cell in layer.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, functools.partial) or (
            callable(value) and value.__qualname__.rsplit(".", 1)[-1].endswith("send")
        ):
            return value
        if callable(value) and value.__qualname__.endswith("sender"):
            return value
    return None


def _name(layer: Any) -> str:
    if isinstance(layer, functools.partial):
        return f"partial({layer.func.__qualname__})"
    return str(layer.__qualname__)


def _chain(send: Callable[..., Any], bottom: Callable[..., Any]) -> list[str]:
    """The wrappers from ``send`` down to ``bottom``, outermost (the response's) first."""
    names = []
    current: Any = send
    while current is not None and current is not bottom:
        names.append(_name(current))
        current = _inner_send(current)
    if current is None:
        names.append("?")
    return names


class _TimedResponse(Response):
    def __init__(self, loops: int, results: dict[str, Any], bottom: Send) -> None:
        super().__init__()
        self.loops = loops
        self.results = results
        self.bottom = bottom

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        self.results["layers"] = _chain(send, self.bottom)
        for target, key in ((self.bottom, "server_send_ns"), (send, "through_layers_ns")):
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter_ns()
                for _ in range(self.loops):
                    await target(_BODY)
                best = min(best, (time.perf_counter_ns() - started) / self.loops)
            self.results[key] = best
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def measure(app: FastAPI, loops: int, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    results: dict[str, Any] = {}

    async def raw_send(message: Message) -> None:
        return None

    @app.post(PATH)
    async def timed() -> Response:
        return _TimedResponse(loops, results, raw_send)

    body = b"{}"
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    await app(scope, receive, raw_send)
    results["added_ns"] = results["through_layers_ns"] - results["server_send_ns"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", type=int, default=100_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    configs = {
        "default (open API, no CORS)": (Settings(), []),
        "API keys + CORS, browser request": (
            Settings(api_keys="k", cors_origins="http://page.example"),
            [(b"authorization", b"Bearer k"), (b"origin", b"http://page.example")],
        ),
    }
    report = {}
    for name, (settings, headers) in configs.items():
        result = asyncio.run(measure(create_app(settings), args.loops, headers))
        report[name] = result
        logger.info(
            "%s: %.0f ns per send added by %d layers: %s",
            name,
            result["added_ns"],
            len(result["layers"]),
            " -> ".join(result["layers"]),
        )
    logger.info(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()

"""A fault-injecting OpenAI-compatible upstream, as a raw ASGI app.

Raw ASGI rather than a framework so every byte, every pause and the exact
moment of closing are under the test's control. The scenario is the first
path segment: ``POST /{scenario}/v1/chat/completions``, so one server (see
``tests.servers.serve_app``) serves every test; point ``upstream_url`` at
``{base}/{scenario}/v1``.

Every request is recorded (path, headers, JSON body) with a
``threading.Event`` set when the client disconnected before the response
was complete: the app runs in uvicorn's thread, the test in its own loop.
``POST /responses`` is the Responses API for the ``responses`` scenario
(its events scripted by the request), and absent (404) for every other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

# Pieces of the happy-path answer: multi-byte characters, an emoji, and a
# piece that would forge an event if anyone re-framed it without escaping.
PIECES: Final = ("Hello", ", ", "流式", "输出", " 🙂", " \n\ndata: [DONE]\n\n", "é", " end.")
ANSWER: Final = "".join(PIECES)
# Distinct from anything the engine could estimate, so a test can tell them apart.
USAGE: Final = {"prompt_tokens": 17, "completion_tokens": 42, "total_tokens": 59}
API_KEY: Final = "sk-test-0123456789abcdef-SECRET"
# Bytes per network write in the happy path: splits events, lines and UTF-8 characters.
SPLIT_BYTES: Final = 7

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


@dataclass
class RecordedRequest:
    scenario: str
    path: str
    headers: dict[str, str]
    body: Any
    disconnected: threading.Event = field(default_factory=threading.Event)


class _Exchange:
    """One request in flight: its record, and helpers to answer it."""

    def __init__(self, record: RecordedRequest, receive: Receive, send: Send) -> None:
        self.record = record
        self._receive = receive
        self._send = send
        self._watcher: asyncio.Task[None] | None = None
        self._gone = asyncio.Event()

    def watch_disconnect(self) -> None:
        self._watcher = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.record.disconnected.set()
        self._gone.set()

    async def stop_watching(self) -> None:
        # uvicorn answers receive() with http.disconnect once the response is
        # complete, so the watcher must be gone before the last body message.
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    @property
    def gone(self) -> bool:
        return self.record.disconnected.is_set()

    async def start(self, status: int = 200, content_type: str = "text/event-stream") -> None:
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )

    async def write(self, data: bytes | str) -> None:
        body = data.encode() if isinstance(data, str) else data
        await self._send({"type": "http.response.body", "body": body, "more_body": True})

    async def end(self, data: bytes | str = b"") -> None:
        await self.stop_watching()
        body = data.encode() if isinstance(data, str) else data
        await self._send({"type": "http.response.body", "body": body, "more_body": False})

    async def reply(self, status: int, body: bytes | str, content_type: str) -> None:
        await self.start(status, content_type)
        await self.end(body)

    async def wait_gone(self, limit_s: float = 30.0) -> None:
        """Stay silent until the client leaves (bounded, so a bug cannot hang the server)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit_s):
                await self._gone.wait()


def chunk(content: str | None = None, *, role: bool = False, finish: str | None = None) -> str:
    """One ``data:`` line holding a chat.completion.chunk (no blank line)."""
    delta: dict[str, str] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    obj = {
        "id": "chatcmpl-upstream",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    # Raw UTF-8 on the wire (not \\u escapes), so split writes cut characters.
    return "data: " + json.dumps(obj, ensure_ascii=False) + "\n"


def usage_chunk() -> str:
    obj = {"id": "chatcmpl-upstream", "object": "chat.completion.chunk", "choices": []}
    return "data: " + json.dumps({**obj, "usage": USAGE}) + "\n"


def event(line: str) -> str:
    return line + "\n"


class FaultyUpstream:
    """The ASGI app. ``requests`` lists every chat request received, oldest first."""

    def __init__(self, *, trickle_delay_s: float = 0.02, slow_interval_s: float = 0.01) -> None:
        self.requests: list[RecordedRequest] = []
        self.trickle_delay_s = trickle_delay_s
        self.slow_interval_s = slow_interval_s
        self._lock = threading.Lock()

    def last(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan: nothing to set up
        scenario, _, rest = scope["path"].lstrip("/").partition("/")
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        record = RecordedRequest(scenario, scope["path"], headers, parsed)
        with self._lock:
            self.requests.append(record)
        exchange = _Exchange(record, receive, send)
        if rest == "v1/models":
            await exchange.reply(
                200,
                json.dumps({"object": "list", "data": [{"id": "m-one"}, {"id": "m-two"}]}),
                "application/json",
            )
            return
        if rest == "v1/responses" and scope["method"] == "POST":
            await self._responses(exchange, scenario)
            return
        if rest != "v1/chat/completions" or scope["method"] != "POST":
            await exchange.reply(404, '{"error": {"message": "no such route"}}', "application/json")
            return
        handler = getattr(self, "_" + scenario.replace("-", "_"), None)
        if handler is None:
            if scenario.startswith("status-"):
                await self._status(exchange, scenario)
                return
            await exchange.reply(404, f"unknown scenario {scenario!r}", "text/plain")
            return
        exchange.watch_disconnect()
        try:
            await handler(exchange)
        finally:
            await exchange.stop_watching()

    # --- the Responses API -----------------------------------------------------------

    async def _responses(self, ex: _Exchange, scenario: str) -> None:
        """``POST /{scenario}/v1/responses``: only ``responses`` speaks the Responses API
        (an empty body gets its 400, as from any API that has the route); ``status-N``
        answers N; every other scenario has no such route (404)."""
        if scenario.startswith("status-"):
            await self._status(ex, scenario)
            return
        if scenario != "responses":
            await ex.reply(404, '{"error": {"message": "no such route"}}', "application/json")
            return
        body = ex.record.body or {}
        if "input" not in body:
            error = {"message": "Missing required parameter: 'input'.", "type": "invalid_request"}
            await ex.reply(400, json.dumps({"error": error}), "application/json")
            return
        ex.watch_disconnect()
        try:
            await self._events(ex, body.get("x_events", []), hold=bool(body.get("x_hold")))
        finally:
            await ex.stop_watching()

    async def _events(self, ex: _Exchange, events: list[Any], *, hold: bool = False) -> None:
        """Each item of ``x_events``: an event object (sent with ``event:`` = its type),
        or a string sent as the data of one event as it is. With ``x_hold`` the stream
        stays open after them until the client leaves (an upstream still generating)."""
        await ex.start()
        for item in events:
            if ex.gone:
                return
            if isinstance(item, str):
                await ex.write(f"data: {item}\n\n")
            else:
                await ex.write(f"event: {item.get('type')}\ndata: {json.dumps(item)}\n\n")
            await asyncio.sleep(0)  # let the disconnect watcher run
        if hold:
            await ex.wait_gone()
        await ex.end()

    # --- scenarios -------------------------------------------------------------------

    async def _ok(self, ex: _Exchange) -> None:
        """Happy path, spec-legal but awkward: ids, comments, CRLF, split writes."""
        body = ex.record.body
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        parts = [": upstream says hello\n\n", "id: 1\n" + event(chunk("", role=True))]
        for n, piece in enumerate(PIECES, start=2):
            parts.append(f"id: {n}\n" + event(chunk(piece)))
            # After an id, a comment makes httpx-sse yield an empty event (its issue #35).
            parts.append(": keep-alive\n\n")
        parts.append(event(chunk(finish="stop")).replace("\n", "\r\n"))
        if include_usage:
            parts.append(event(usage_chunk()))
        parts.append("data: [DONE]\n\n")
        raw = "".join(parts).encode()
        await ex.start()
        for i in range(0, len(raw), SPLIT_BYTES):
            await ex.write(raw[i : i + SPLIT_BYTES])
        await ex.end()

    async def _strict(self, ex: _Exchange) -> None:
        """Like some upstreams: unknown request fields are a 400."""
        if "stream_options" in ex.record.body:
            message = "Unrecognized request argument supplied: stream_options"
            await ex.reply(400, json.dumps({"error": {"message": message}}), "application/json")
            return
        await self._ok(ex)

    async def _auth(self, ex: _Exchange) -> None:
        """OpenAI-style 401 that echoes the key it was given."""
        given = ex.record.headers.get("authorization", "")
        if given != f"Bearer {API_KEY}":
            key = given.removeprefix("Bearer ")
            message = f"Incorrect API key provided: {key}. You can find your API key at …"
            error = {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}
            await ex.reply(401, json.dumps({"error": error}), "application/json")
            return
        await self._ok(ex)

    async def _status(self, ex: _Exchange, scenario: str) -> None:
        """``status-503``: an OpenAI error body; ``status-502-text``: a plain-text body."""
        _, status, *kind = scenario.split("-")
        if kind == ["text"]:
            await ex.reply(int(status), "<html>Bad Gateway from the proxy</html>", "text/html")
            return
        error = {"message": "The model is overloaded, try later", "type": "server_error"}
        await ex.reply(int(status), json.dumps({"error": error}), "application/json")

    async def _drop(self, ex: _Exchange) -> None:
        """A few chunks, then the connection is cut mid-body (no chunked terminator)."""
        await ex.start()
        await ex.write(event(chunk("", role=True)) + event(chunk("partial ")))
        await ex.write(b'data: {"choi')
        # Returning without completing makes uvicorn close the transport.

    async def _truncated(self, ex: _Exchange) -> None:
        """A clean end of body, but before finish_reason and [DONE]."""
        await ex.start()
        await ex.write(event(chunk("", role=True)) + event(chunk("half an ans")))
        await ex.end()

    async def _finish_no_done(self, ex: _Exchange) -> None:
        """finish_reason, then a clean end without usage or [DONE]: the answer is whole."""
        await ex.start()
        await ex.write(event(chunk("complete")) + event(chunk(finish="length")))
        await ex.end()

    async def _done_only(self, ex: _Exchange) -> None:
        """[DONE] without any finish_reason (some older servers)."""
        await ex.start()
        await ex.end(event(chunk("fine")) + "data: [DONE]\n\n")

    async def _bad_json(self, ex: _Exchange) -> None:
        await ex.start()
        await ex.write(event(chunk("ok ")))
        await ex.end('data: {"choices": [{"delta": {"content": "x"}\n\ndata: [DONE]\n\n')

    async def _not_a_chunk(self, ex: _Exchange) -> None:
        await ex.start()
        await ex.end('data: {"result": "hello"}\n\ndata: [DONE]\n\n')

    async def _not_sse(self, ex: _Exchange) -> None:
        """Ignores stream: true and answers one JSON completion."""
        answer = {"object": "chat.completion", "choices": [{"message": {"content": "hi"}}]}
        await ex.reply(200, json.dumps(answer), "application/json")

    async def _ndjson(self, ex: _Exchange) -> None:
        """Claims text/event-stream but sends NDJSON (Ollama's native API shape)."""
        await ex.start()
        lines = [json.dumps({"message": {"content": w}, "done": False}) for w in ("a", "b")]
        await ex.end("\n".join(lines) + "\n")

    async def _error_event(self, ex: _Exchange) -> None:
        """An in-band error after some text, then [DONE] (vLLM and ssechat do this)."""
        await ex.start()
        await ex.write(event(chunk("some text")))
        error = {"error": {"message": "CUDA out of memory", "type": "server_error"}}
        await ex.end("data: " + json.dumps(error) + "\n\ndata: [DONE]\n\n")

    async def _surrogates(self, ex: _Exchange) -> None:
        """An emoji spelled as two JSON escapes, in two chunks."""
        await ex.start()
        raw = event(chunk("a")).replace('"a"', '"a\\ud83d"')
        raw += event(chunk("b")).replace('"b"', '"\\ude00b"')
        raw += event(chunk("\\udc00", finish="stop")).replace("\\\\udc00", "\\udc00")
        await ex.end(raw + "data: [DONE]\n\n")

    async def _stall(self, ex: _Exchange) -> None:
        """Some text, then silence with the connection open."""
        await ex.start()
        await ex.write(event(chunk("", role=True)) + event(chunk("thinking")))
        await ex.wait_gone()

    async def _trickle(self, ex: _Exchange) -> None:
        """Never silent for long, but one byte per ``trickle_delay_s``: no event completes
        in time. If the client waits it out, the answer arrives whole."""
        await ex.start()
        raw = (event(chunk("slowly", role=True)) + event(chunk(finish="stop"))).encode()
        raw += b"data: [DONE]\n\n"
        for i in range(len(raw)):
            if ex.gone:
                return
            await ex.write(raw[i : i + 1])
            await asyncio.sleep(self.trickle_delay_s)
        await ex.end()

    async def _script(self, ex: _Exchange) -> None:
        """Replays the chunks listed in the request's ``x_script`` field (unknown to
        ssechat, so the engine passes it on). Each item is a choice (``delta``,
        ``finish_reason``, ``logprobs``, ``stop_reason``) or ``{"usage": …}``, sent ``repeat`` times
        (default once); ``[DONE]`` follows. JSON is ASCII-escaped, so a script can
        hold lone surrogate halves."""
        await ex.start()
        for item in ex.record.body.get("x_script", []):
            for _ in range(item.get("repeat", 1)):
                if ex.gone:
                    return
                obj: dict[str, Any] = {
                    "id": "chatcmpl-upstream",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "upstream-model",
                    "choices": [],
                }
                if "usage" in item:
                    obj["usage"] = item["usage"]
                else:
                    choice = {"index": 0, "delta": item.get("delta", {})}
                    choice["finish_reason"] = item.get("finish_reason")
                    for key in ("logprobs", "stop_reason"):  # vLLM names the matched stop
                        if key in item:
                            choice[key] = item[key]
                    obj["choices"] = [choice]
                await ex.write("data: " + json.dumps(obj) + "\n\n")
                await asyncio.sleep(0)  # let the disconnect watcher run
        await ex.end("data: [DONE]\n\n")

    async def _slow(self, ex: _Exchange) -> None:
        """Endless tokens until the client leaves (bounded at 30 s)."""
        await ex.start()
        await ex.write(event(chunk("", role=True)))
        for n in range(int(30 / self.slow_interval_s)):
            if ex.gone:
                return
            await ex.write(event(chunk(f"t{n} ")))
            await asyncio.sleep(self.slow_interval_s)
        await ex.end(event(chunk(finish="length")) + "data: [DONE]\n\n")

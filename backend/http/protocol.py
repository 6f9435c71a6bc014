"""uvicorn's httptools protocol plus the limits it lacks.

uvicorn (httptools) has no cap on header bytes and no read timeouts: a
64 MiB header is buffered whole, and a connection that trickles a header
byte now and then, or never sends one, is held forever. ``GuardedHttpProtocol``
adds, per connection, before any ASGI code runs:

- Header bytes: the request line and header section may take at most
  ``max_header_bytes``. Bytes are counted before they reach the parser and
  only that many are ever fed to it, so memory stays bounded whatever the
  client sends. Beyond it: 431, then a lingering close (stop parsing, keep
  reading and discarding for ``linger_s``) so the client can read the 431
  instead of a connection reset.
- Header timeout: the header section must be complete ``header_timeout_s``
  after the connection opens, or after the first byte of a later request on
  a kept-alive connection (between requests, uvicorn's idle keep-alive
  timeout applies). A silent connection is closed; a partial request gets 408.
- Body timeout and rate: while the server waits for body bytes, a silence
  of ``body_timeout_s``, or an average below ``body_min_bytes_per_s`` once
  ``body_timeout_s`` has passed, answers 408. Time spent with reading paused
  (the app has not consumed what it has) or waiting to send
  ``100 Continue`` does not count against the client.
- Connection cap: uvicorn's ``limit_concurrency``, with the 503 rendered as
  a JSON error like every other refusal (and ``Retry-After``).

Pipelined requests are counted from the read after the previous message
ends, so a pipelined header may take up to one read (256 KiB) more.

Memory per connection: our state lives in slots, not in the instance dict.
uvicorn's protocol sets 28 attributes; CPython shares a class's dict keys
between its instances only while they hold fewer than 30, so past that every
connection's dict becomes a private table several times the size. uvicorn's
two per-connection ``asyncio.Event`` objects (the request's message event, the
write flow control) each allocate a ``deque`` block for their waiters, and
its queue of pipelined requests one more; ours are lists, which take no
memory for items until something is in them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from backend.http.disconnect import DISCONNECT_EXTENSION, DisconnectSignal
from backend.http.replies import error_json, raw_response, send_error

__all__ = ["GuardedHttpProtocol", "HttpLimits", "ServerConfig"]


@dataclass(frozen=True)
class HttpLimits:
    """Per-connection limits of ``GuardedHttpProtocol``; 0 turns a limit off."""

    max_header_bytes: int = 65_536
    header_timeout_s: float = 10.0
    body_timeout_s: float = 10.0
    body_min_bytes_per_s: int = 1024
    linger_s: float = 2.0


class ServerConfig(uvicorn.Config):
    """A ``uvicorn.Config`` serving HTTP through ``GuardedHttpProtocol`` with ``limits``.

    A module-level class (not a closure) so ``--workers`` can pickle it to
    spawned processes.
    """

    def __init__(self, app: Any, *, limits: HttpLimits, **kwargs: Any) -> None:
        super().__init__(app, http=GuardedHttpProtocol, **kwargs)
        self.http_limits = limits


async def _over_capacity(scope: Scope, _receive: Receive, send: Send) -> None:
    await send_error(
        send,
        scope["path"],
        503,
        "Server at its connection limit; retry shortly.",
        "server_error",
        "overloaded",
        headers={"Retry-After": "1"},
        close=True,
    )


class _LeanEvent(asyncio.Event):
    """An ``asyncio.Event`` whose waiters are a list: ``Event`` only appends, removes
    and iterates them, and an empty list costs no block, where a deque costs one."""

    def __init__(self) -> None:
        super().__init__()
        self._waiters: list[asyncio.Future[bool]] = []  # type: ignore[assignment]


class _Pipeline(list[Any]):
    """uvicorn's queue of pipelined requests as a list: uvicorn only calls
    ``appendleft`` and ``pop`` (first in, first out) and tests it for emptiness,
    and an empty list costs no block, where a deque costs one per connection."""

    def appendleft(self, item: Any) -> None:
        self.insert(0, item)


class GuardedHttpProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with header-size, header-timeout and body-rate limits."""

    __slots__ = (
        "_body_bytes",
        "_body_last",
        "_body_since",
        "_body_timer",
        "_head_bytes",
        "_head_timer",
        "_heads_done",
        "_in_head",
        "_lingering",
        "_message_begun",
        "capacity",
        "limits",
    )

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.pipeline = _Pipeline()  # type: ignore[assignment]
        self.limits = config.http_limits if isinstance(config, ServerConfig) else HttpLimits()
        # Our own check in on_headers_complete, so the 503 is a JSON error.
        self.capacity = self.limit_concurrency
        self.limit_concurrency = None
        self._in_head = True  # reading a request line + headers (or waiting for one)
        self._message_begun = False
        self._head_bytes = 0
        self._heads_done = 0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_since = 0.0
        self._body_last = 0.0
        self._body_bytes = 0
        self._lingering = False

    # -- connection -----------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        lean = _LeanEvent()
        lean.set()
        self.flow._is_writable_event = lean
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_body_timer()
        super().connection_lost(exc)
        self._tell_disconnected()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # refused already: read and drop
        if not self._in_head:
            self._body_bytes += len(data)
            self._body_last = self.loop.time()
            super().data_received(data)
            return
        limit = self.limits.max_header_bytes
        room = limit - self._head_bytes
        if limit <= 0 or len(data) <= room:
            self._head_bytes += len(data)
            super().data_received(data)
            return
        heads_before = self._heads_done
        self._head_bytes += room
        super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self._heads_done == heads_before:
            self._refuse_head()
            return
        self.data_received(data[room:])  # the body, or a pipelined request

    # -- parser callbacks -----------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._message_begun = True
        if self._head_timer is None:
            self._arm_head_timer()  # a kept-alive connection's next request begins

    def on_headers_complete(self) -> None:
        self._heads_done += 1
        self._in_head = False
        self._cancel_head_timer()
        cycle = self.cycle
        cap = self.capacity
        if cap is not None and (len(self.connections) >= cap or len(self.tasks) >= cap):
            self.logger.warning("Exceeded concurrency limit.")
            app, self.app = self.app, _over_capacity
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        if self.cycle is not cycle:
            # A new request's cycle (not an upgrade): its task has not run yet, so
            # nothing waits on the event this replaces.
            self.cycle.message_event = _LeanEvent()
            # Added to whatever extensions the server declared (none in the uvicorn
            # versions we run on, but the spec allows them).
            extensions: dict[str, Any] = self.cycle.scope.setdefault("extensions", {})
            extensions[DISCONNECT_EXTENSION] = DisconnectSignal(self.flow)
        upgrading = self.parser.should_upgrade() and self._should_upgrade()
        if not upgrading and self.limits.body_timeout_s > 0:
            now = self.loop.time()
            self._body_since = self._body_last = now
            self._body_bytes = 0
            self._body_timer = self.loop.call_later(self._body_tick(), self._check_body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._cancel_body_timer()
        self._in_head = True
        self._message_begun = False
        self._head_bytes = 0

    # -- header limits --------------------------------------------------------------------------
    def _arm_head_timer(self) -> None:
        if self.limits.header_timeout_s > 0:
            self._head_timer = self.loop.call_later(
                self.limits.header_timeout_s, self._head_timed_out
            )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._in_head:
            return
        if self._message_begun and self._may_answer():
            self.transport.write(
                self._error(
                    408, "Request headers not received in time.", "request_timeout", self._path()
                )
            )
        self.transport.close()

    def _refuse_head(self) -> None:
        self._cancel_head_timer()
        if not self._may_answer():
            self.transport.close()
            return
        limit = self.limits.max_header_bytes
        self.transport.write(
            self._error(
                431,
                f"Request line and headers exceed {limit} bytes.",
                "request_header_fields_too_large",
                self._path(),
            )
        )
        self._lingering = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(self.limits.linger_s, self.transport.close)

    # -- body limits ----------------------------------------------------------------------------
    def _body_tick(self) -> float:
        return min(1.0, self.limits.body_timeout_s)

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _check_body(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.cycle
        waiting_on_us = self.flow.read_paused or (
            cycle is not None and cycle.waiting_for_100_continue
        )
        if waiting_on_us:
            self._body_since = self._body_last = now
            self._body_bytes = 0
        else:
            timeout = self.limits.body_timeout_s
            elapsed = now - self._body_since
            silent = now - self._body_last >= timeout
            too_slow = (
                not silent
                and self.limits.body_min_bytes_per_s > 0
                and elapsed >= timeout
                and self._body_bytes < self.limits.body_min_bytes_per_s * elapsed
            )
            if silent or too_slow:
                self._body_timed_out(too_slow)
                return
        self._body_timer = self.loop.call_later(self._body_tick(), self._check_body)

    def _body_timed_out(self, too_slow: bool) -> None:
        message = (
            f"Request body arriving slower than {self.limits.body_min_bytes_per_s} bytes/s."
            if too_slow
            else f"Request body not received for {self.limits.body_timeout_s:g}s."
        )
        cycle = self.cycle
        if self._may_answer() or (cycle is not None and not cycle.response_started):
            self.transport.write(self._error(408, message, "request_timeout", self._path()))
        if cycle is not None:
            # The app sees http.disconnect now, and its own sends go nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
            self._tell_disconnected()
        self.transport.close()

    # -- helpers --------------------------------------------------------------------------------
    def _tell_disconnected(self) -> None:
        """Fire the request's ``DisconnectSignal`` wherever uvicorn's ``receive`` would
        now say ``http.disconnect``."""
        cycle = self.cycle
        if cycle is None or not cycle.disconnected:
            return
        extensions = cycle.scope.get("extensions")
        signal = extensions.get(DISCONNECT_EXTENSION) if extensions else None
        if isinstance(signal, DisconnectSignal):
            signal.fire()

    def _may_answer(self) -> bool:
        """No response of an earlier request is still being written on this connection."""
        return self.cycle is None or self.cycle.response_complete

    def _path(self) -> str:
        if not self._message_begun:
            return ""
        return self.url.partition(b"?")[0].decode("latin-1")

    @staticmethod
    def _error(status: int, message: str, code: str, path: str) -> bytes:
        body = error_json(path, status, message, "invalid_request_error", code)
        return raw_response(STATUS_LINE[status], body)

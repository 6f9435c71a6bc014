"""A synchronous facade over the async ``ui.client``, for Streamlit's script thread.

Streamlit runs the page script in a thread of its own and reruns it on every
interaction, so the page cannot own an event loop: a loop made per run would
die with the run, and the ``httpx.AsyncClient`` inside ``ChatClient`` belongs
to the loop that made it. So one ``LoopThread`` per process runs every
coroutine; the script thread only submits work and waits for results.

A stream is pumped by a task on that loop into a ``queue.Queue`` (thread-safe
on both ends); the script thread takes items off it. Waiting is done in short
slices with an ``on_idle`` callback between them, so a caller can offer its
framework a chance to interrupt the wait (Streamlit's Stop is only noticed at
such points) even when no token arrives.

Cancelling is the same path as Gradio's Stop: the pump task is cancelled, so
``ChatStream``'s exit sends ``POST …/cancel`` (shielded) before closing the
connection. ``SyncChatStream.cancel`` waits for that to finish, so when it
returns the server has been told.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, NoReturn, Self, TypeVar

from ui.client import (
    Answer,
    ChatClient,
    ChatClientError,
    ChatRequest,
    ChatStream,
    ConnectionLostError,
    Delta,
    StreamEventError,
    make_http_client,
)

__all__ = ["LoopThread", "SyncChatClient", "SyncChatStream"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CALL_TIMEOUT_S = 30.0
CANCEL_TIMEOUT_S = 10.0
IDLE_SLICE_S = 0.1  # how long a read waits before offering the caller an interruption point


class LoopThread:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self, name: str = "ssechat-loop") -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = DEFAULT_CALL_TIMEOUT_S) -> T:
        """Run ``coro`` on the loop and wait for its result (its exception is re-raised)."""
        future = self.submit(coro)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise

    def call_soon(self, callback: Callable[[], object]) -> None:
        self._loop.call_soon_threadsafe(callback)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self._loop.close()


class SyncChatClient:
    """``ChatClient``'s calls, blocking, on a private loop thread (one per process is enough)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        read_timeout_s: float = 60.0,
        max_reconnects: int | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._loop = LoopThread(f"ssechat-loop:{self.base_url}")
        self._client = self._loop.run(
            self._make_client(api_key, read_timeout_s, max_reconnects), 10.0
        )

    async def _make_client(
        self, api_key: str | None, read_timeout_s: float, max_reconnects: int | None
    ) -> ChatClient:
        # Made on the loop thread: the AsyncClient's pool belongs to this loop.
        http = make_http_client(self.base_url, read_timeout_s=read_timeout_s)
        client = ChatClient(http, api_key=api_key, read_timeout_s=read_timeout_s)
        if max_reconnects is not None:
            client.max_reconnects = max_reconnects
        return client

    def health(self) -> dict[str, Any]:
        return self._loop.run(self._client.health())

    def models(self) -> list[str]:
        return self._loop.run(self._client.models())

    def cancel(self, stream_id: str) -> None:
        """``POST …/{id}/cancel``; a stream already gone on the server is not an error."""
        try:
            self._loop.run(self._client.cancel(stream_id))
        except ChatClientError as exc:
            logger.info("cancel of %s: %s", stream_id, exc.message)

    def stream(self, request: ChatRequest) -> SyncChatStream:
        """Start streaming at once; iterate the result (or its ``texts``) for the answer."""
        return SyncChatStream(self._loop, self._client.stream_chat(request))

    def close(self) -> None:
        self._loop.run(self._client.http.aclose(), 5.0)
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _End:
    __slots__ = ()


class _Failure:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class SyncChatStream:
    """One streamed answer, read from a thread: ``Delta`` items, then exactly one ``Answer``.

    ``answer`` is set once the stream ended (by ``[DONE]``, a cancel, or an
    error that carries the partial answer); ``error`` is the client error, if
    any. Closing an unfinished stream cancels it on the server.
    """

    def __init__(self, loop: LoopThread, stream: ChatStream) -> None:
        self._loop = loop
        self._stream = stream
        self._items: queue.Queue[Delta | Answer | _End | _Failure] = queue.Queue()
        self._done = threading.Event()
        self._ended = False  # the consumer has seen the end
        self.answer: Answer | None = None
        self.error: ChatClientError | None = None
        self._task = loop.run(self._start(), 10.0)

    async def _start(self) -> asyncio.Task[None]:
        task = asyncio.create_task(self._pump())
        # A done callback, not a ``finally``: it also runs for a task cancelled before it started.
        task.add_done_callback(self._on_pump_done)
        return task

    def _on_pump_done(self, _task: asyncio.Task[None]) -> None:
        self._items.put_nowait(_End())
        self._done.set()

    @property
    def stream_id(self) -> str | None:
        """The server's id, once its response headers arrived."""
        return self._stream.stream_id

    @property
    def done(self) -> bool:
        """The pump has stopped: nothing more will arrive."""
        return self._done.is_set()

    async def _pump(self) -> None:
        try:
            async with self._stream as stream:
                async for item in stream:
                    self._items.put_nowait(item)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the reading thread
            self._items.put_nowait(_Failure(exc))

    def __iter__(self) -> Iterator[Delta | Answer]:
        return self.items()

    def items(self, on_idle: Callable[[], None] | None = None) -> Iterator[Delta | Answer]:
        """Items as they arrive; ``on_idle`` runs whenever nothing came for a short while.

        A ``ChatClientError`` is re-raised here; if it carries the partial
        answer (an in-band error, a lost connection), ``answer`` is set first.
        """
        while not self._ended:
            try:
                item = self._items.get(timeout=IDLE_SLICE_S)
            except queue.Empty:
                if on_idle is not None:
                    on_idle()
                continue
            if isinstance(item, _End):
                self._ended = True
                if self.answer is None:
                    self.answer = self._stream.snapshot()
                return
            if isinstance(item, _Failure):
                self._fail(item.exc)
            if isinstance(item, Answer):
                self.answer = item
            yield item

    def texts(self, on_idle: Callable[[], None] | None = None) -> Iterator[str]:
        """The answer's text in pieces; a piece joins every delta already waiting.

        Joining never waits for more: it only absorbs a backlog (a reader slower
        than the stream), so a UI makes one update where it would make many.
        """
        pending: list[str] = []
        try:
            for item in self.items(on_idle):
                if isinstance(item, Delta):
                    pending.append(item.text)
                    if not self._items.empty():
                        continue
                if pending:
                    yield "".join(pending)
                    pending.clear()
        except Exception:
            # The stream failed right behind a backlog: what came before the
            # failure is still the answer's, so it is shown before the error.
            if pending:
                yield "".join(pending)
            raise

    def _fail(self, exc: BaseException) -> NoReturn:
        self._ended = True
        if isinstance(exc, StreamEventError | ConnectionLostError):
            self.answer = exc.answer
        else:
            self.answer = self._stream.snapshot()
        if isinstance(exc, ChatClientError):
            self.error = exc
        raise exc

    def cancel(self, timeout_s: float = CANCEL_TIMEOUT_S) -> Answer:
        """Stop the generation on the server and wait until it was told; the partial answer.

        A stream that already ended is left as it is.
        """
        if not self._done.is_set():
            self._loop.call_soon(self._task.cancel)
            if not self._done.wait(timeout_s):
                logger.warning(
                    "stream %s: cancel not confirmed in %.1fs", self.stream_id, timeout_s
                )
        if self.answer is None or not self._ended:
            self._ended = True
            self.answer = self._stream.snapshot()
        return self.answer

    def close(self) -> None:
        """Cancel if unfinished (the server stops generating), else just release."""
        self.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

"""The generation runner both hubs share.

A ``Run`` is one generation this process runs as a task, writing into a
``LocalStream`` (an ``EventLog`` plus its waiting readers). The runner owns
what is the same in every hub: produce each event into the log and wake the
readers; on an early stop (cancel, abandon, shutdown, a memory bound, a lost
store) append the generation's closing events; on a crash of the generation
append its "error" closing events; and settle a task that was cancelled
before it ever ran (no ``except``/``finally`` of its own runs then). What
differs per hub arrives through two hooks: ``on_append`` (bytes accounting,
the memory bound, the Redis writer) and ``on_finish`` (expiry, the last write).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from backend.hub.base import EndReason, Fragment, Generation
from backend.hub.local import LocalStream

logger = logging.getLogger(__name__)

# Why a stream ended early for the byte bound (the generation renders it as its error event).
BOUND_MESSAGE = (
    "the server's buffer for resumable streams is full (SSECHAT_MAX_BUFFERED_BYTES); "
    "this answer was cut short"
)


@dataclass(eq=False)
class Run:
    """One generation run by this process, and how it is being stopped."""

    stream: LocalStream
    generation: Generation
    owner: str | None
    background: bool = False  # runs on without readers
    task: asyncio.Task[None] | None = None
    # Why it is being stopped early, once asked (the first reason given wins).
    end_reason: EndReason | None = None
    end_message: str = ""
    # How it ended: None = the generation's own last event; else the early reason.
    ended_early: EndReason | None = None

    @property
    def stream_id(self) -> str:
        return self.stream.stream_id

    @property
    def stopping(self) -> bool:
        return self.end_reason is not None


RunT = TypeVar("RunT", bound=Run)


class Runner(Generic[RunT]):
    """Runs generations into their local streams.

    ``on_append(run, size, produced)``: ``size`` bytes were stored; ``produced``
    is False for the closing events of an early stop. ``on_finish(run)``: the
    stream has its last event. ``on_end(reason)``: a generation was stopped
    early (metrics).
    """

    def __init__(
        self,
        *,
        on_append: Callable[[RunT, int, bool], None],
        on_finish: Callable[[RunT], None],
        on_end: Callable[[EndReason], None] | None = None,
    ) -> None:
        self._on_append = on_append
        self._on_finish = on_finish
        self._on_end = on_end

    def launch(self, run: RunT) -> None:
        run.task = asyncio.create_task(self._produce(run), name=f"generation {run.stream_id}")
        # A task cancelled before its first step never runs its body (no
        # except/finally), e.g. a cancel or shutdown right after start: end
        # the stream from outside then, or its readers would wait forever.
        run.task.add_done_callback(lambda _task: self._settle(run))

    def stop(self, run: RunT, reason: EndReason, message: str) -> None:
        """Stop the generation early (a no-op once it has ended)."""
        if run.end_reason is None:
            run.end_reason = reason
            run.end_message = message
        task = run.task
        if task is not None and not task.done():
            task.cancel()

    async def stop_and_wait(self, run: RunT, reason: EndReason, message: str) -> None:
        """``stop``, then wait until the closing events are in the log."""
        task = run.task
        self.stop(run, reason, message)
        if task is not None:
            # ``wait`` neither re-raises the task's own cancellation nor swallows
            # the caller's (``suppress(CancelledError)`` around a shield would do both).
            await asyncio.wait((task,))

    async def _produce(self, run: RunT) -> None:
        stream = run.stream
        log = stream.log
        generation = run.generation
        on_append = self._on_append
        try:
            added = log.add_templates(generation.templates)
            if added:
                on_append(run, added, True)
            async for item in generation.events():
                if isinstance(item, Fragment):
                    # Templates are append-only and may grow while the generation runs.
                    size = (
                        log.add_templates(generation.templates)
                        if item.template >= len(log.templates)
                        else 0
                    )
                    size += log.append_fragment(item.template, item.part)
                else:
                    size = log.append_event(item[0], item[1])
                stream.wake()
                on_append(run, size, True)
        except asyncio.CancelledError:
            reason = run.end_reason or "shutdown"
            self._close_early(run, reason, run.end_message or reason)
        except Exception as error:  # the generation already turns engine faults into events
            logger.exception("generation %s failed", run.stream_id)
            self._close_early(run, "error", str(error) or type(error).__name__)
        finally:
            self._finish(run)

    def _settle(self, run: RunT) -> None:
        if not run.stream.done:  # cancelled before it ever ran
            reason = run.end_reason or "shutdown"
            self._close_early(run, reason, run.end_message or reason)
            self._finish(run)

    def _close_early(self, run: RunT, reason: EndReason, message: str) -> None:
        run.ended_early = reason
        stream = run.stream
        for name, payload in run.generation.closing_events(reason, message):
            self._on_append(run, stream.log.append_event(name, payload), False)
        if self._on_end is not None:
            self._on_end(reason)

    def _finish(self, run: RunT) -> None:
        run.task = None  # a finished task keeps its coroutine frame alive
        run.stream.finish()
        self._on_finish(run)

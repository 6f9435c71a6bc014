"""Requests' Redis calls, batched: one pipeline per round trip over one connection.

Starts (``admit.lua``), subscribes (``attach.lua``), cancels, probes,
heartbeats: whatever the worker's requests and tasks ask of Redis is queued
and sent in one pipeline per round trip, one pipeline in flight at a time.
A connection pool would hold one connection per call for a round trip plus
however long the event loop takes to come back to it, which under load
turns a burst of starts into a queue behind a handful of connections; here
the burst is one pipeline, and the worker keeps one connection whatever
its load. Callers await a plain future, never a redis-py call, so a
cancelled request (a client gone) cancels nothing inside redis-py.

A script Redis does not know (it restarted, or its script cache was
flushed) is loaded and its call sent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from backend.hub.redis.connection import cancel_and_wait

logger = logging.getLogger(__name__)

# Calls per pipeline (the rest go in the next one).
_MAX_CALLS = 512


class _Call:
    __slots__ = ("args", "future", "options", "script")

    def __init__(
        self,
        script: AsyncScript | None,
        args: tuple[Any, ...],
        options: dict[str, Any],
        future: asyncio.Future[Any],
    ) -> None:
        self.script = script
        self.args = args
        self.options = options
        self.future = future


class Batcher:
    def __init__(self, client: Redis, scripts: Sequence[AsyncScript]) -> None:
        self._client = client
        self._scripts = list(scripts)
        self._queue: list[_Call] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def script(self, script: AsyncScript, *args: Any) -> Any:
        """``EVALSHA`` of ``script`` (no keys: the scripts build them from the prefix)."""
        return await self._submit(script, args, {})

    async def command(self, *args: Any, **options: Any) -> Any:
        """Any other command, its reply parsed as redis-py parses it (e.g. ``XRANGE``)."""
        return await self._submit(None, args, options)

    def _submit(
        self, script: AsyncScript | None, args: tuple[Any, ...], options: dict[str, Any]
    ) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        self._queue.append(_Call(script, args, options, future))
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="redis hub: request batches")
        return future

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        for call in self._queue:
            if not call.future.done():
                call.future.set_exception(RedisError("the hub is closed"))
        self._queue = []

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            calls = [call for call in self._queue[:_MAX_CALLS] if not call.future.done()]
            del self._queue[:_MAX_CALLS]
            if calls:
                await self._send(calls)

    async def _send(self, calls: list[_Call]) -> None:
        pipe = self._client.pipeline(transaction=False)
        for call in calls:
            if call.script is not None:
                pipe.evalsha(call.script.sha, 0, *call.args)
            else:
                pipe.execute_command(*call.args, **call.options)
        try:
            replies = await pipe.execute(raise_on_error=False)
        except RedisError as error:
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(error)
            return
        unknown: list[_Call] = []
        for call, reply in zip(calls, replies, strict=True):
            if isinstance(reply, NoScriptError):
                unknown.append(call)
            elif call.future.done():
                continue
            elif isinstance(reply, Exception):
                call.future.set_exception(reply)
            else:
                call.future.set_result(reply)
        if unknown:
            await self._load_scripts(unknown)

    async def _load_scripts(self, calls: list[_Call]) -> None:
        try:
            for script in self._scripts:
                await self._client.script_load(script.script)
        except RedisError as error:
            for call in calls:
                if not call.future.done():
                    call.future.set_exception(error)
            return
        logger.info("redis hub: loaded the scripts into Redis")
        self._queue[:0] = calls

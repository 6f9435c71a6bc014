"""Signalling between workers: the control channel, the heartbeat, abandonment.

- Control channel: pub/sub channel ``P:worker:{wid}`` of the worker that runs
  a stream. ``cancel {id}`` (a cancel from any worker), ``full {id}`` (the
  byte bound picked this stream to end) and ``detached {id}`` (the last reader
  on another worker left). A message lost while the pub/sub connection was
  down is caught by the next heartbeat, which reads the stop request
  (``meta.cancel``) and counts the readers.
- Heartbeat (every ``HEARTBEAT_S``): renews this worker's liveness key
  (``PX`` ``LEASE_S``), the deadlines of the streams it runs, and the leases
  of its readers of other workers' streams; reads the deployment's totals
  for the gauges.
- Abandonment: a stream is abandoned when it has no reader here and none
  elsewhere (their leases in ``P:stream:{id}:subs``) for ``resume_grace_s``
  after the last one left; a stream nobody ever attached to is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.hub.base import EndReason
from backend.hub.redis.batch import Batcher
from backend.hub.redis.connection import BACKOFF_MAX_S, BACKOFF_MIN_S, Scripts, cancel_and_wait
from backend.hub.redis.owned import Owned
from backend.hub.runner import BOUND_MESSAGE

logger = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
LEASE_S = 5.0
LOST_MESSAGE = "the stream was lost from the stream store"

Stop = Callable[[Owned, EndReason, str], None]


class Signals:
    def __init__(
        self,
        commands: Redis,
        batch: Batcher,
        scripts: Scripts,
        *,
        prefix: str,
        worker_id: str,
        grace_s: float,
        live_ms: int,
        owned: dict[str, Owned],
        remote_readers: dict[str, str],
        stop: Stop,
    ) -> None:
        self._commands = commands
        self._batch = batch
        self._scripts = scripts
        self._prefix = prefix
        self._worker_id = worker_id
        self.channel = f"{prefix}worker:{worker_id}"
        self._grace_s = grace_s
        self._live_ms = live_ms
        self._owned = owned
        self._remote_readers = remote_readers  # subscriber id -> stream id
        self._stop = stop
        self.listening = asyncio.Event()
        self.stored_streams = 0
        self.stored_bytes = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="redis hub: control channel"),
            asyncio.create_task(self._beat(), name="redis hub: heartbeat"),
        ]

    async def aclose(self) -> None:
        await cancel_and_wait([*self._tasks, *self._background])

    def spawn(self, coroutine: Awaitable[None]) -> None:
        """Run ``coroutine`` beside the requests (cancelled at close)."""
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- control channel ------------------------------------------------------------------------
    async def _listen(self) -> None:
        """Follow this worker's control channel, resubscribing after a connection loss."""
        backoff = BACKOFF_MIN_S
        connected = False
        while True:
            pubsub = self._commands.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        if self.listening.is_set() and not connected:
                            logger.info("redis hub: control channel back")
                        connected = True
                        backoff = BACKOFF_MIN_S
                        self.listening.set()
                    elif message["type"] == "message":
                        self._on_control(str(message["data"]))
            except RedisError as error:
                if connected:
                    logger.warning("redis hub: control channel lost (%s); reconnecting", error)
                connected = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await cast(Any, pubsub).aclose()  # untyped in redis-py

    def _on_control(self, text: str) -> None:
        kind, _, stream_id = text.partition(" ")
        run = self._owned.get(stream_id)
        if run is None:
            return
        if kind == "cancel":
            self._stop(run, "cancelled", "cancelled by request")
        elif kind == "full":
            self._stop(run, "error", BOUND_MESSAGE)
        elif kind == "detached":
            self.no_subscribers(run)

    # -- abandonment ----------------------------------------------------------------------------
    def no_subscribers(self, run: Owned) -> None:
        """No reader left here, or none left elsewhere: re-count after the grace period."""
        if (
            run.stream.done
            or run.stream.subscribers > 0
            or run.grace is not None
            or run.checking
            or run.background
        ):
            return
        if self._grace_s == 0:
            run.checking = True
            self.spawn(self._check_abandoned(run))
        else:
            run.grace = asyncio.get_running_loop().call_later(self._grace_s, self._grace_over, run)

    def reattached(self, run: Owned) -> None:
        run.attached = True
        if run.grace is not None:
            run.grace.cancel()
            run.grace = None

    def _grace_over(self, run: Owned) -> None:
        run.grace = None
        run.checking = True
        self.spawn(self._check_abandoned(run))

    async def _check_abandoned(self, run: Owned) -> None:
        try:
            if run.stream.subscribers > 0:
                return
            left = await self._batch.script(self._scripts.count, self._prefix, run.stream_id)
        except RedisError:
            return  # the next heartbeat counts again
        finally:
            run.checking = False
        if left == 0 and run.stream.subscribers == 0:
            self._stop(run, "abandoned", "no subscriber left")

    # -- heartbeat ------------------------------------------------------------------------------
    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self.heartbeat()
            except RedisError as error:
                logger.debug("redis hub: heartbeat failed: %s", error)

    async def heartbeat(self) -> None:
        """Renew this worker's leases; act on what Redis says about its streams."""
        owned = [run for run in self._owned.values() if not run.stream.done]
        alone = [
            run.stream_id for run in owned if run.stream.subscribers == 0 and not run.background
        ]
        pairs: list[str] = []
        for subscriber, stream_id in self._remote_readers.items():
            pairs += (stream_id, subscriber)
        reply = await self._batch.script(
            self._scripts.heartbeat,
            self._prefix,
            self._worker_id,
            round(LEASE_S * 1000),
            self._live_ms,
            round(LEASE_S * 1000),
            len(owned),
            *(run.stream_id for run in owned),
            len(alone),
            *alone,
            *pairs,
        )
        self.stored_streams, self.stored_bytes = int(reply[0]), int(reply[1])
        expires_at = time.monotonic() + self._live_ms / 1000
        for run in owned:
            run.expires_at = expires_at
        for index in range(2, len(reply), 3):
            needy = self._owned.get(reply[index])
            what, attached = reply[index + 1], int(reply[index + 2])
            if needy is None:
                continue
            if what == "lost":
                self._stop(needy, "error", LOST_MESSAGE)
            elif what == "cancelled":
                self._stop(needy, "cancelled", "cancelled by request")
            elif what == "full":
                self._stop(needy, "error", BOUND_MESSAGE)
            elif what == "unread" and (attached or needy.attached):
                self.no_subscribers(needy)

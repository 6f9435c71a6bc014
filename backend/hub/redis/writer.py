"""The writer: copies this worker's streams into Redis, in batches.

Producers never wait for Redis: an appended event only marks its stream
dirty. One task per worker sends everything new, over every dirty stream,
in one ``append.lua`` call; what accumulates while that call is in flight
goes in the next one, so under load a call carries many events and the
cost per event falls. Each stream's templates travel with its first events
that need them (meta fields ``t{i}``), so any worker can rebuild every
payload byte for byte, and events are stored compactly: a fragment as its
template index and part, a whole event as its name and payload.

Redis away: the batch is retried with backoff, the events wait in the
streams' own logs (nothing is lost; writes are idempotent, so nothing is
duplicated either), and the hub decides per stream whether the generation
goes on (``on_outage``). A stream Redis no longer has is reported through
``on_lost`` and written no more.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from backend.hub.log import template_size
from backend.hub.redis.connection import BACKOFF_MAX_S, BACKOFF_MIN_S, cancel_and_wait
from backend.hub.redis.owned import Owned

logger = logging.getLogger(__name__)

# Events per script call (Redis runs a script to its end before anything else).
_BATCH_EVENTS = 2048
# At most one call per this long: at 20 tokens/s a stream has one event per call
# anyway, so more calls would only add their fixed cost; readers on the stream's
# own worker never wait for it.
FLUSH_INTERVAL_S = 0.01
# append.lua reads the integers as little-endian int32.
_BIG_ENDIAN = sys.byteorder == "big"
# How a stream ended, as append.lua numbers it (0: not yet).
_REASONS = {"done": 1, "cancelled": 2, "abandoned": 3, "error": 4, "shutdown": 5}


# What a stream sent: (run, last seq, templates and names known to Redis once
# this lands, whether that was its end).
_Sent = tuple[Owned, int, int, int, bool]


class Writer:
    def __init__(
        self,
        client: Redis,
        script: AsyncScript,
        *,
        prefix: str,
        worker_id: str,
        ttl_ms: int,
        live_ms: int,
        max_bytes: int,
        on_flushed: Callable[[Owned], None],
        on_lost: Callable[[Owned, str], None],
        on_outage: Callable[[Owned, float], None],
    ) -> None:
        self._client = client
        self._script = script
        self._head: list[Any] = [prefix, worker_id, ttl_ms, max_bytes]
        self._live_s = live_ms / 1000
        self._on_flushed = on_flushed
        self._on_lost = on_lost
        self._on_outage = on_outage
        # Streams with something new, in the order they got it (a dict as an ordered set).
        self._dirty: dict[Owned, None] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def mark(self, run: Owned, _size: int = 0, _produced: bool = True) -> None:
        """``run`` has something new to write. The runner's ``on_append`` hook: called
        for every event, so it only notes the stream."""
        if run.writable:
            self._dirty[run] = None
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redis hub: writer")

    async def aclose(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])

    async def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        loop = asyncio.get_running_loop()
        sent_at = 0.0
        while True:
            if not self._dirty:
                self._wake.clear()
                await self._wake.wait()
                continue
            pause = sent_at + FLUSH_INTERVAL_S - loop.time()
            if pause > 0:
                await asyncio.sleep(pause)
            sent_at = loop.time()
            dirty, self._dirty = self._dirty, {}
            try:
                args, batch, left = self._build(dirty)
                reply = await self._script(args=args, client=self._client)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not isinstance(error, RedisError):  # a bug: do not retry it forever
                    logger.exception("redis hub: writing %d streams failed", len(dirty))
                    for run in dirty:
                        self._give_up(run, "error")
                    continue
                now = time.monotonic()
                for run in dirty:
                    self._held(run, now, error)
                # Back in front, in order, before whatever arrived meanwhile.
                self._dirty = {**{run: None for run in dirty if run.writable}, **self._dirty}
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            backoff = BACKOFF_MIN_S
            failed = {reply[index]: reply[index + 1] for index in range(0, len(reply), 2)}
            now = time.monotonic()
            for run, upto, templates, names, final in batch:
                status = failed.get(run.stream_id)
                if status is not None:
                    self._give_up(run, status)
                    continue
                if run.outage_since is not None:
                    logger.info("stream %s: Redis is back, writing on", run.stream_id)
                    run.outage_since = None
                run.written = upto
                run.templates_written = templates
                run.names_written = names
                run.expires_at = now + self._live_s
                if final:
                    self._done(run)
                    self._on_flushed(run)
                elif upto < run.stream.log.last_seq or run.stream.done:
                    self.mark(run)  # more than one call's worth
            for run in left:
                self.mark(run)  # left out of this call (too many events)

    def _build(self, dirty: dict[Owned, None]) -> tuple[list[Any], list[_Sent], list[Owned]]:
        """The script's arguments for what ``dirty`` has new (at most ``_BATCH_EVENTS``
        events), see ``append.lua``: (args, what each stream sent, streams left out).

        Everything a stream sends is integers (in one array) and bytes (its id,
        then its events' data, in one buffer): per event, two integers and a
        slice of the log's buffer; no argument, and no text, per stream."""
        numbers: list[int] = []
        chunks: list[bytes | bytearray] = []
        texts: list[str] = []
        sent: list[_Sent] = []
        left: list[Owned] = []
        budget = _BATCH_EVENTS
        for run in dirty:
            if budget <= 0:
                left.append(run)
                continue
            stream = run.stream
            log = stream.log
            written = run.written
            last = log.last_seq
            upto = last if last - written <= budget else written + budget
            final = stream.done and upto == last
            templates, names = log.templates, log.names
            new_templates = len(templates) - run.templates_written
            new_names = len(names) - run.names_written
            key = run.key
            chunks.append(key)
            numbers += (
                len(key),
                written + 1,
                _REASONS[run.end_marker] if final else 0,
                new_templates,
                run.templates_written,
                new_names,
                run.names_written,
                upto - written,
            )
            if new_templates:
                for template in templates[run.templates_written :]:
                    texts.append(json.dumps(list(template), ensure_ascii=False))
                    numbers.append(template_size(template))
            if new_names:
                texts += names[run.names_written :]
            log.pack(written, upto, numbers, chunks)
            budget -= upto - written
            sent.append((run, upto, len(templates), len(names), final))
        packed = array("i", numbers)
        if _BIG_ENDIAN:
            packed.byteswap()
        args = [*self._head, len(sent), packed.tobytes(), b"".join(chunks), *texts]
        return args, sent, left

    def _held(self, run: Owned, now: float, error: RedisError) -> None:
        if run.outage_since is None:
            run.outage_since = now
            logger.warning(
                "stream %s: cannot write to Redis (%s); holding %d events",
                run.stream_id,
                error,
                run.stream.log.last_seq - run.written,
            )
        if now > run.expires_at:
            logger.error(
                "stream %s: Redis away past the stream's lifetime; dropping %d events",
                run.stream_id,
                run.stream.log.last_seq - run.written,
            )
            self._give_up(run, "expired")
            return
        self._on_outage(run, now - run.outage_since)

    def _give_up(self, run: Owned, status: str) -> None:
        self._done(run)
        self._on_lost(run, status)

    def _done(self, run: Owned) -> None:
        run.writable = False
        self._dirty.pop(run, None)
        run.flushed.set()

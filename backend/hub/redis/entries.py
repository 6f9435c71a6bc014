"""Stream entries read back from Redis into an ``EventLog``, as the writer stored them.

An entry's id is ``<seq>-0``; its fields are ``t`` (the template of a
fragment) and ``d`` (the fragment's part), or ``e`` (event name) and ``d``
(a whole payload). A template the log does not know yet was added while the
stream ran: it is fetched (``templates.lua``) before the fragment is taken,
so a worker rebuilds byte for byte what the producing worker's readers got.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

from backend.hub.base import HubError, StreamNotFound, Template
from backend.hub.log import EventLog
from backend.hub.redis.batch import Batcher
from backend.hub.redis.connection import Scripts, retrying

# Entries per XREAD / XRANGE reply.
READ_COUNT = 1024

Entry = tuple[str, dict[str, str]]


def parse_templates(texts: Sequence[str]) -> list[Template]:
    return [Template(*json.loads(text)) for text in texts]


def gone(stream_id: str) -> StreamNotFound:
    return StreamNotFound(f"Stream {stream_id!r} is gone: it expired, or the stream store lost it.")


class Entries:
    """Turns one worker's reads of stored streams back into log entries."""

    def __init__(self, batch: Batcher, scripts: Scripts, *, prefix: str) -> None:
        self._batch = batch
        self._scripts = scripts
        self._prefix = prefix

    async def append(self, log: EventLog, stream_id: str, entry: Entry) -> None:
        """Append one entry; it must be the log's next seq."""
        entry_id, fields = entry
        seq = int(entry_id.partition("-")[0])
        if seq != log.last_seq + 1:  # cannot happen: Redis orders explicit ids
            raise HubError(f"stream {stream_id!r} skipped from {log.last_seq} to {seq}")
        tag = fields.get("t")
        if tag is None:
            log.append_event(fields.get("e", ""), fields["d"])
            return
        template = int(tag)
        if template >= len(log.templates):  # added while the stream ran: fetch
            texts = await self._batch.script(
                self._scripts.templates, self._prefix, stream_id, len(log.templates)
            )
            log.add_templates([*log.templates, *parse_templates(texts)])
        log.append_fragment(template, fields["d"])

    async def fill(self, log: EventLog, stream_id: str, key: str, end: int) -> None:
        """Read the stored entries after the log's last one, up to seq ``end``, into it
        (``gone`` if the store no longer has them)."""
        while log.last_seq < end:
            entries = cast(
                list[Entry],
                await retrying(
                    lambda: self._batch.command(
                        "XRANGE", key, f"{log.last_seq + 1}-0", f"{end}-0", "COUNT", READ_COUNT
                    ),
                    "read",
                ),
            )
            if not entries:
                raise gone(stream_id)
            for entry in entries:
                await self.append(log, stream_id, entry)

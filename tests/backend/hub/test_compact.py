"""Compact storage: a stream kept as templates plus variable parts reads back byte for byte.

The expected bytes are the SSE encoder's output for the events expanded here
(``ScriptedGeneration.expected``), never what the hub stored; readers are on
the producing worker and on another one (Redis: rebuilt from Redis, with a
backfill for a second reader that needs earlier events than the first).
"""

from __future__ import annotations

import asyncio

import pytest

from backend.generation.payload import escape
from backend.hub.base import Fragment, Produced, StreamEvent, Template
from backend.hub.log import EventLog
from tests.backend.hub.conftest import Hubs
from tests.backend.hub.helpers import (
    Reader,
    ScriptedGeneration,
    eventually,
    read_all,
    wire_bytes,
)

CHUNK = Template("", '{"id":"c1","choices":[{"delta":{"content":', "}}]}")
NAMED = Template("response.output_text.delta", '{"type":"delta","delta":', ',"n":1}')

# Text an engine may hand us: multi-byte UTF-8, an emoji, a lone surrogate
# (written as "?" by the encoder, and so by the store), quotes, an empty part.
SCRIPT: list[Produced] = [
    ("", '{"role":"assistant"}'),
    Fragment(0, escape("Hello")),
    Fragment(0, escape(" wörld — 世界 🎉")),
    Fragment(0, escape('"quoted" \\ back\nslash')),
    Fragment(0, escape("")),
    ("response.created", '{"type":"created","note":"ünïcode"}'),
    Fragment(1, escape("named ")),  # template 1 arrives just before this one
    Fragment(1, escape("lone \ud800 surrogate")),
    Fragment(0, escape("back to zero")),
    ("", "line one\nline two"),
    ("", '{"finish_reason":"stop"}'),
    ("", "[DONE]"),
]


def scripted(delay_s: float = 0.0) -> ScriptedGeneration:
    return ScriptedGeneration(SCRIPT, templates=[CHUNK], new_templates={6: NAMED}, delay_s=delay_s)


def expected_bytes(after: int = 0) -> bytes:
    events = scripted().expected()
    return wire_bytes(
        [(seq, name, data) for seq, (name, data) in enumerate(events, 1) if seq > after]
    )


def as_bytes(events: list[StreamEvent]) -> bytes:
    return wire_bytes(events)


async def test_a_finished_stream_reads_back_byte_for_byte(hubs: Hubs) -> None:
    hub = await hubs.make()
    peer = await hubs.peer(hub)
    await hub.start("c1", None, scripted())
    assert as_bytes(await read_all(hub, "c1")) == expected_bytes()
    # Another worker: the first reader starts late, the second needs more (backfill).
    late = Reader(await peer.subscribe("c1", 7, None))
    early = await read_all(peer, "c1", 2)
    assert as_bytes(early) == expected_bytes(2)
    assert as_bytes(await late.rest()) == expected_bytes(7)


async def test_a_live_stream_reads_back_byte_for_byte_with_templates_added_late(
    hubs: Hubs,
) -> None:
    hub = await hubs.make()
    peer = await hubs.peer(hub)
    await hub.start("c1", None, scripted(delay_s=0.05))
    # Both attach before the second template exists.
    results = await asyncio.gather(read_all(hub, "c1"), read_all(peer, "c1"))
    assert [as_bytes(events) for events in results] == [expected_bytes()] * 2


async def test_stored_bytes_are_the_templates_once_and_the_variable_parts(hubs: Hubs) -> None:
    hub = await hubs.make()
    await hub.start("c1", None, scripted())
    events = await read_all(hub, "c1")

    def utf8(text: str) -> int:
        return len(text.encode("utf-8", "replace"))

    templates = sum(utf8(text) for template in (CHUNK, NAMED) for text in template)
    parts = sum(
        utf8(item.part) if isinstance(item, Fragment) else utf8(item[0]) + utf8(item[1])
        for item in SCRIPT
    )

    # (Redis: once the writer's last batch for it has landed.)
    async def stored_all() -> bool:
        return await hubs.stored_bytes(hub) == templates + parts

    await eventually(stored_all)
    whole = sum(utf8(event.data) + utf8(event.event) for event in events)
    assert templates + parts < whole


# -- the log itself ------------------------------------------------------------------------------


def test_log_keeps_names_tags_and_offsets_apart() -> None:
    log = EventLog([CHUNK], base=4)
    log.append_event("", '{"a":1}')
    log.append_fragment(0, escape("é"))
    log.add_templates([CHUNK, NAMED])
    log.append_fragment(1, escape("x"))
    log.append_event("ping", "{}")
    assert log.last_seq == 8
    events = log.read(4)
    assert [event.seq for event in events] == [5, 6, 7, 8]
    assert [event.event for event in events] == ["", "", NAMED.event, "ping"]
    assert events[1].data == CHUNK.prefix + '"é"' + CHUNK.suffix
    assert log.read(6) == events[2:]
    assert log.read(8) == []
    numbers: list[int] = []
    chunks: list[bytes | bytearray] = []
    log.pack(5, 8, numbers, chunks)
    assert numbers == [0, len('"é"'.encode()), 1, 3, ~1, 2]
    assert chunks == [bytearray('"é""x"{}'.encode())]
    assert log.names[~numbers[4]] == "ping"
    log.pack(8, 8, numbers, chunks)
    assert len(numbers) == 6
    assert len(chunks) == 1


def test_log_refuses_a_fragment_of_an_unknown_template() -> None:
    log = EventLog([CHUNK])
    with pytest.raises(ValueError, match="unknown template 1"):
        log.append_fragment(1, '"x"')
    assert len(log) == 0


def test_log_size_counts_utf8_bytes_once_per_template() -> None:
    log = EventLog([CHUNK])
    template_bytes = sum(len(text.encode()) for text in CHUNK)
    assert log.size == template_bytes
    log.append_fragment(0, '"€"')
    log.append_event("ev", "ü")
    assert log.size == template_bytes + len('"€"'.encode()) + len(b"ev") + len("ü".encode())
    log.freeze()
    assert log.read(0)[1] == StreamEvent(2, "ev", "ü")


async def test_a_fragment_of_a_template_never_given_ends_the_stream_with_an_error(
    hubs: Hubs,
) -> None:
    hub = await hubs.make()
    bad = ScriptedGeneration(
        [("", '{"role":"assistant"}'), Fragment(0, '"ok"'), Fragment(3, '"nope"')],
        templates=[CHUNK],
    )
    await hub.start("c1", None, bad)
    events = await read_all(await hubs.peer(hub), "c1")
    assert [event.data for event in events] == [
        '{"role":"assistant"}',
        CHUNK.prefix + '"ok"' + CHUNK.suffix,
        '{"reason":"error"}',
    ]
    assert events[-1].event == "error"
    assert hubs.ends.reasons == ["error"]

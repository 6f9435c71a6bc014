"""The encoder against the spec: exact bytes, a reference parser, and httpx-sse on split chunks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from httpx_sse import EventSource

from backend.sse import (
    KEEPALIVE_COMMENT,
    SSEFieldError,
    encode_batch,
    encode_comment,
    encode_data_event,
    encode_event,
)
from tests.whatwg_sse import parse_stream

EXACT_BYTES = [
    pytest.param("hello", {}, b"data: hello\n\n", id="plain"),
    pytest.param("", {}, b"data: \n\n", id="empty data is one empty data line"),
    pytest.param("a\nb", {}, b"data: a\ndata: b\n\n", id="LF splits"),
    pytest.param("a\r\nb", {}, b"data: a\ndata: b\n\n", id="CRLF splits once"),
    pytest.param("a\rb", {}, b"data: a\ndata: b\n\n", id="lone CR splits"),
    pytest.param("a\n\nb", {}, b"data: a\ndata: \ndata: b\n\n", id="blank line inside data"),
    pytest.param("a\n", {}, b"data: a\ndata: \n\n", id="trailing newline kept"),
    pytest.param("\n", {}, b"data: \ndata: \n\n", id="only a newline"),
    pytest.param(" lead", {}, b"data:  lead\n\n", id="leading space survives"),
    pytest.param(":colon", {}, b"data: :colon\n\n", id="leading colon is data, not comment"),
    pytest.param("data: x", {}, b"data: data: x\n\n", id="field-looking text stays data"),
    pytest.param("流式输出 🚀", {}, "data: 流式输出 🚀\n\n".encode(), id="utf-8"),
    pytest.param("x", {"event_id": 7}, b"id: 7\ndata: x\n\n", id="id"),
    pytest.param("x", {"event": "delta"}, b"event: delta\ndata: x\n\n", id="event"),
    pytest.param("x", {"retry_ms": 1500}, b"retry: 1500\ndata: x\n\n", id="retry"),
    pytest.param(
        "x",
        {"event": "e", "event_id": "9", "retry_ms": 0},
        b"event: e\nid: 9\nretry: 0\ndata: x\n\n",
        id="all fields in order",
    ),
]


@pytest.mark.parametrize(("data", "fields", "expected"), EXACT_BYTES)
def test_encode_event_exact_bytes(data: str, fields: dict[str, object], expected: bytes) -> None:
    assert encode_event(data, **fields) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "fields", "expected"), EXACT_BYTES)
def test_reference_parser_reads_back_the_data(
    data: str, fields: dict[str, object], expected: bytes
) -> None:
    events, retry = parse_stream(expected)
    # The spec normalises every line break inside data to LF.
    assert [event.data for event in events] == [data.replace("\r\n", "\n").replace("\r", "\n")]
    assert events[0].type == fields.get("event", "message")
    assert events[0].last_event_id == str(fields.get("event_id", ""))
    assert retry == fields.get("retry_ms")


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event": "a\nb"}, "event"),
        ({"event": "a\rb"}, "event"),
        ({"event_id": "1\n2"}, "id"),
        ({"event_id": "1\r"}, "id"),
        ({"event_id": "a\0b"}, "NULL"),
        ({"retry_ms": -1}, "retry"),
        ({"retry_ms": True}, "retry"),
    ],
)
def test_fields_that_would_corrupt_the_stream_are_rejected(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(SSEFieldError, match=message):
        encode_event("x", **fields)  # type: ignore[arg-type]


def test_fast_path_matches_general_encoder() -> None:
    for seq, data in [(1, "{}"), (22, '{"a":"b c"}'), (3, "[DONE]"), (4, "x\ny")]:
        assert encode_data_event(seq, data) == encode_event(data, event_id=seq)
        assert encode_data_event(seq, data, 250) == encode_event(data, event_id=seq, retry_ms=250)


def test_batch_puts_retry_on_first_event_only() -> None:
    raw = encode_batch([(1, "", "a"), (2, "", "b")], retry_ms=100)
    assert raw == b"id: 1\nretry: 100\ndata: a\n\nid: 2\ndata: b\n\n"


def test_batch_writes_event_names_on_the_fast_path_and_the_slow_one() -> None:
    raw = encode_batch([(1, "response.created", "{}"), (2, "", "x"), (3, "e", "a\nb")], 5)
    assert raw == (
        b"event: response.created\nid: 1\nretry: 5\ndata: {}\n\n"
        b"id: 2\ndata: x\n\n"
        b"event: e\nid: 3\ndata: a\ndata: b\n\n"
    )
    events, retry = parse_stream(raw)
    assert retry == 5
    assert [(event.type, event.data, event.last_event_id) for event in events] == [
        ("response.created", "{}", "1"),
        ("message", "x", "2"),
        ("e", "a\nb", "3"),
    ]


def test_keepalive_is_a_comment_that_dispatches_nothing() -> None:
    raw = encode_data_event(1, "a") + KEEPALIVE_COMMENT + encode_data_event(2, "b")
    events, _ = parse_stream(raw)
    assert [(event.data, event.last_event_id) for event in events] == [("a", "1"), ("b", "2")]
    assert KEEPALIVE_COMMENT.startswith(b":")


def test_multiline_comment_stays_a_comment() -> None:
    raw = encode_comment("one\ntwo\r\nthree") + encode_event("x")
    assert raw.startswith(b": one\n: two\n: three\n")
    assert [event.data for event in parse_stream(raw)[0]] == ["x"]


def test_a_token_cannot_forge_an_event() -> None:
    hostile = 'tok\n\ndata: {"forged": true}\n\nid: 999\nevent: x\r\n'
    raw = encode_data_event(1, hostile) + encode_data_event(2, "after")
    events, _ = parse_stream(raw)
    assert [event.data for event in events] == [hostile.replace("\r\n", "\n"), "after"]
    assert [event.last_event_id for event in events] == ["1", "2"]


SAMPLE_STREAM = (
    encode_event("first", event_id=1, retry_ms=1000)
    + KEEPALIVE_COMMENT
    + encode_event("two\nlines", event_id=2)
    + encode_event("流式输出 🚀 émoji", event_id=3, event="delta")
    + encode_event("[DONE]", event_id=4)
)


def _split_every(raw: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start : start + size]


def _httpx_sse_events(chunks: list[bytes]) -> list[tuple[str, str, str]]:
    response = httpx.Response(
        200,
        headers={"content-type": "text/event-stream"},
        stream=httpx.ByteStream(b""),
    )
    response.stream = _ChunkStream(chunks)
    events = EventSource(response).iter_sse()
    # httpx-sse issue #35: it may yield empty events after comments; a real
    # client drops events with no data, as ui/client.py does.
    return [(event.event, event.data, event.id) for event in events if event.data]


class _ChunkStream(httpx.SyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self._chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self._chunks


EXPECTED_SAMPLE = [
    ("message", "first", "1"),
    ("message", "two\nlines", "2"),
    ("delta", "流式输出 🚀 émoji", "3"),
    ("message", "[DONE]", "4"),
]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, len(SAMPLE_STREAM)])
def test_httpx_sse_parses_deliberately_split_chunks(size: int) -> None:
    # Chunks of 1–7 bytes split lines, CRLF-free line ends and multi-byte
    # characters in every possible place.
    assert _httpx_sse_events(list(_split_every(SAMPLE_STREAM, size))) == EXPECTED_SAMPLE


def test_httpx_sse_and_reference_parser_agree() -> None:
    reference = [
        (event.type, event.data, event.last_event_id) for event in parse_stream(SAMPLE_STREAM)[0]
    ]
    assert reference == EXPECTED_SAMPLE

"""Bad input, generated: schemathesis against the live API, hypothesis against the encoder.

- schemathesis derives requests (valid and invalid) from the app's OpenAPI
  document and sends them to a real server: no 5xx, every status and body as
  documented, invalid requests refused. The document is built from the same
  app the server runs (``app.openapi()``, needing no lifespan), so the cases
  exist at collection time; a test checks the server serves that same document.
- hypothesis feeds arbitrary text to ``backend.sse``: whatever the text, the
  two independent parsers (the reference WHATWG parser in tests/whatwg_sse.py,
  and httpx-sse) read back exactly that text, with the id we wrote, as exactly
  one event: no input forges an event or a field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from httpx_sse import EventSource
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from backend.app import create_app
from backend.config import Settings
from backend.sse import encode_batch, encode_data_event, encode_event
from tests.servers import serve_app
from tests.whatwg_sse import parse_stream

API_KEY = "sk-fuzz-0123456789"


def make_app() -> FastAPI:
    settings = Settings(
        engine="simulated",
        sim_tokens_per_s=0.0,
        api_keys=API_KEY,
        max_tokens_limit=64,
        default_max_tokens=16,
        rate_limit_per_min=0,
    )
    return create_app(settings)


schema = schemathesis.openapi.from_dict(make_app().openapi())


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    with serve_app(make_app()) as base_url:
        yield base_url


def test_server_serves_the_fuzzed_document(live: str) -> None:
    # Keys are on, so the schema is behind the key too (SSECHAT_OPEN_DOCS would open it).
    served = httpx.get(f"{live}/openapi.json", headers={"x-api-key": API_KEY}).json()
    assert served == make_app().openapi()
    # what schemathesis checks statuses against: 400 (ours), never FastAPI's 422
    for path_item in served["paths"].values():
        for operation in path_item.values():
            assert "422" not in operation["responses"]


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_api_conforms_to_its_schema(case: Any, live: str) -> None:
    # Every check but "schema-valid data is accepted": some limits are settings
    # (max_tokens_limit, max_messages, max_message_chars) that the static
    # document cannot state, so a schema-valid request may rightly get a 400.
    # Invalid data must still be refused, and nothing may answer 5xx.
    case.call_and_validate(
        base_url=live,
        headers={"Authorization": f"Bearer {API_KEY}"},
        excluded_checks=[positive_data_acceptance],
        timeout=30,
    )


# --- the encoder -------------------------------------------------------------------------

# Line breaks of every kind, NUL, BOM, lone surrogates' neighbours, and text that
# looks like SSE fields: what a token could carry.
_SSE_LIKE = st.sampled_from(
    [
        "\r\n",
        "\r",
        "\n",
        "\n\n",
        "data: x",
        "id: 7",
        "event: e",
        "retry: 1",
        ":",
        " ",
        "\0",
        "\ufeff",
    ]
)
TEXT = st.lists(st.one_of(st.text(), _SSE_LIKE), max_size=12).map("".join)


def _without_surrogates(text: str) -> str:
    # A lone surrogate cannot be UTF-8 encoded; the encoder writes "?" for it
    # (errors="replace"), as documented. Compare against that.
    return text.encode("utf-8", "replace").decode("utf-8")


def _normalised(text: str) -> str:
    # The spec parser splits lines on CRLF, CR and LF and joins data lines with
    # LF: a value's line breaks come back as LF.
    return re.sub(r"\r\n|\r", "\n", _without_surrogates(text))


def _httpx_sse(raw: bytes) -> list[tuple[str, str, str]]:
    response = httpx.Response(200, headers={"content-type": "text/event-stream"}, content=raw)
    # No comments in what we parse here, so httpx-sse's empty-event quirk (its
    # issue #35) cannot occur: every event it yields is one we wrote.
    return [(event.event, event.data, event.id) for event in EventSource(response).iter_sse()]


@given(data=TEXT, seq=st.integers(min_value=1, max_value=2**53))
@example(data="\n\ndata: [DONE]\n\n", seq=1)
@example(data="a\r\nid: 99\r\n\r\ndata: forged", seq=5)
@example(data="\r", seq=2)
@example(data=" leading space", seq=3)
@settings(max_examples=300, deadline=None)
def test_any_text_round_trips_as_one_event(data: str, seq: int) -> None:
    raw = encode_data_event(seq, data)
    events, retry = parse_stream(raw)
    assert retry is None
    assert len(events) == 1
    assert events[0].data == _normalised(data)
    assert events[0].last_event_id == str(seq)
    assert events[0].type == "message"
    assert _httpx_sse(raw) == [("message", _normalised(data), str(seq))]


@given(items=st.lists(TEXT, min_size=1, max_size=6), retry_ms=st.integers(0, 10**9))
@settings(max_examples=150, deadline=None)
def test_a_batch_is_exactly_its_events_in_order(items: list[str], retry_ms: int) -> None:
    raw = encode_batch([(seq, "", item) for seq, item in enumerate(items, start=1)], retry_ms)
    events, retry = parse_stream(raw)
    assert retry == retry_ms
    assert [event.data for event in events] == [_normalised(item) for item in items]
    assert [event.last_event_id for event in events] == [str(n) for n in range(1, len(items) + 1)]
    parsed = _httpx_sse(raw)
    assert [data for _event, data, _id in parsed] == [_normalised(item) for item in items]


@given(data=TEXT, event=st.text().filter(lambda t: "\r" not in t and "\n" not in t))
@settings(max_examples=150, deadline=None)
def test_event_names_round_trip_or_are_refused(data: str, event: str) -> None:
    raw = encode_event(data, event=event, event_id="1")
    events, _ = parse_stream(raw)
    assert len(events) == 1
    # the spec strips one leading space after the colon; the encoder writes one
    expected_type = _without_surrogates(event) or "message"
    assert events[0].type == expected_type
    assert events[0].data == _normalised(data)


def test_fields_that_would_break_the_framing_are_refused() -> None:
    for bad in ("a\nb", "a\rb", "a\r\nb"):
        with pytest.raises(ValueError, match="CR or LF"):
            encode_event("x", event=bad)
        with pytest.raises(ValueError, match="CR or LF"):
            encode_event("x", event_id=bad)
    with pytest.raises(ValueError, match="NULL"):
        encode_event("x", event_id="1\0")


@pytest.mark.parametrize(
    "field",
    [
        {"seed": False},  # what schemathesis found accepted (pydantic coerced it to 0)
        {"stream": "true"},
        {"stream": 1},
        {"temperature": "1"},
        {"max_tokens": 2.5},
        {"n": "1"},
        {"stream_options": {"include_usage": "yes"}},
    ],
)
def test_wrongly_typed_fields_are_refused_not_coerced(live: str, field: dict[str, Any]) -> None:
    body = {"messages": [{"role": "user", "content": "x"}], **field}
    response = httpx.post(
        f"{live}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_integral_numbers_are_integers(live: str) -> None:
    """JSON Schema's ``integer`` includes 2.0, so the documented schema accepts it too."""
    body = {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2.0, "seed": 7.0}
    response = httpx.post(
        f"{live}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert response.status_code == 200
    assert response.json()["usage"]["completion_tokens"] == 2

"""Resume at the edges, on a real socket (memory hub): after the end, and ahead of the stream.

- After the final event (or beyond it): 204 and no body, the SSE spec's
  "stop reconnecting" for an EventSource.
- Ahead of a live stream: the response waits for the events after the id
  it claims, never replays ids at or below it; ahead of the final event it
  is 204 once the stream ends.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from backend.app import create_app
from backend.config import Settings
from tests.servers import serve_app
from tests.whatwg_sse import parse_stream

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "resume at the edges"}]


@pytest.fixture
def base_url() -> Iterator[str]:
    settings = Settings(engine="simulated", sim_tokens_per_s=40.0, sim_fill_max_tokens=True)
    with serve_app(create_app(settings)) as url:
        yield url


def ids_of(raw: bytes) -> list[int]:
    return [int(event.last_event_id) for event in parse_stream(raw)[0]]


def test_resume_after_the_end_is_204_without_a_body(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        body = {"messages": MESSAGES, "stream": True, "max_tokens": 4}
        with http.stream("POST", CHAT, json=body) as response:
            stream_id = response.headers["x-stream-id"]
            last = ids_of(response.read())[-1]
        url = f"{CHAT}/{stream_id}/events"
        for after in (last, last + 1, last + 1000):
            resumed = http.get(url, headers={"Last-Event-ID": str(after)})
            assert resumed.status_code == 204
            assert resumed.content == b""
        assert ids_of(http.get(url, headers={"Last-Event-ID": str(last - 1)}).content) == [last]


def test_resume_ahead_of_a_live_stream_waits_and_never_replays_claimed_ids(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        body = {"messages": MESSAGES, "stream": True, "max_tokens": 40}
        with http.stream("POST", CHAT, json=body) as original:
            stream_id = original.headers["x-stream-id"]
            lines = original.iter_lines()
            while not next(lines).startswith("id: 2"):  # the stream is at event 2
                pass
            url = f"{CHAT}/{stream_id}/events"
            ahead = 20
            with http.stream("GET", url, headers={"Last-Event-ID": str(ahead)}) as resumed:
                assert resumed.status_code == 200
                got = ids_of(resumed.read())
            for _ in lines:  # the original reader to the end
                pass
        full = ids_of(http.get(f"{CHAT}/{stream_id}/events").content)
        assert full == list(range(1, len(full) + 1))
        assert got == [n for n in full if n > ahead]
        assert got[0] == ahead + 1


def test_resume_ahead_of_the_final_event_is_204_once_the_stream_ends(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as http:
        body = {"messages": MESSAGES, "stream": True, "max_tokens": 10}
        with http.stream("POST", CHAT, json=body) as original:
            stream_id = original.headers["x-stream-id"]
            lines = original.iter_lines()
            next(lines)  # the stream has begun, and is still live
            resumed = http.get(f"{CHAT}/{stream_id}/events", headers={"Last-Event-ID": "10000"})
            rest = list(lines)
        assert resumed.status_code == 204
        assert resumed.content == b""
        assert "data: [DONE]" in rest

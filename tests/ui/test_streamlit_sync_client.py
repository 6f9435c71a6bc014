"""ui/streamlit_support/sync_client.py: the sync facade against a live backend on a real socket."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from backend.app import create_app
from tests.servers import serve_app
from tests.ui.conftest import backend_settings
from tests.ui.helpers import cancelled_by_request, poll, reference_text
from ui.client import Answer, BackendUnreachableError, ChatRequest, Delta, StreamEventError
from ui.streamlit_support.embedded import start_backend
from ui.streamlit_support.sync_client import SyncChatClient

QUESTION = [{"role": "user", "content": "Why stream answers over SSE?"}]


@pytest.fixture
def client(backend_url: str) -> Iterator[SyncChatClient]:
    with SyncChatClient(backend_url) as sync:
        yield sync


def metrics_cancelled(base_url: str) -> float:
    return cancelled_by_request(httpx.get(f"{base_url}/metrics", timeout=10).text)


def test_deltas_then_one_answer_equal_to_the_non_streamed_text(
    client: SyncChatClient, backend_url: str
) -> None:
    with client.stream(ChatRequest(messages=QUESTION, max_tokens=30, seed=3)) as stream:
        items = list(stream)
    deltas = [item for item in items if isinstance(item, Delta)]
    assert isinstance(items[-1], Answer)
    assert all(isinstance(item, Delta) for item in items[:-1])
    expected = reference_text(backend_url, QUESTION, max_tokens=30, seed=3)
    assert "".join(d.text for d in deltas) == items[-1].text == expected
    assert stream.answer is items[-1]
    assert stream.answer.metrics.finish_reason in {"stop", "length"}
    assert stream.done


def test_texts_join_to_the_answer_and_idle_callback_runs_between_tokens() -> None:
    idle = threading.Event()
    # 4 tokens/s: gaps well past the facade's idle slice.
    app = create_app(backend_settings(sim_tokens_per_s=4.0))
    with (
        serve_app(app) as url,
        SyncChatClient(url) as client,
        client.stream(ChatRequest(messages=QUESTION, max_tokens=3)) as stream,
    ):
        pieces = list(stream.texts(on_idle=idle.set))
    assert stream.answer is not None
    assert "".join(pieces) == stream.answer.text != ""
    assert idle.is_set()


def test_cancel_reaches_the_server_before_it_returns(
    client: SyncChatClient, backend_url: str
) -> None:
    before = metrics_cancelled(backend_url)
    stream = client.stream(ChatRequest(messages=QUESTION, max_tokens=2000))  # 40 s
    seen = 0
    for item in stream:
        if isinstance(item, Delta):
            seen += 1
            if seen == 3:
                break
    answer = stream.cancel()
    assert metrics_cancelled(backend_url) == before + 1  # no waiting: cancel waited for it
    assert answer.cancelled
    assert answer.metrics.tokens < 2000
    assert answer.text
    assert stream.done
    # The generation stopped: a replay ends at once with [DONE].
    replay = httpx.get(
        f"{backend_url}/v1/chat/completions/{stream.stream_id}/events",
        headers={"Last-Event-ID": "0"},
        timeout=10,
    )
    assert replay.text.rstrip().endswith("data: [DONE]")


def test_cancel_before_the_first_token_and_twice_is_safe(
    client: SyncChatClient, backend_url: str
) -> None:
    stream = client.stream(ChatRequest(messages=QUESTION, max_tokens=2000))
    first = stream.cancel()
    second = stream.cancel()
    assert second is first
    assert stream.done
    assert list(stream) == []  # nothing is delivered after a cancel


def test_cancel_by_id_for_a_stream_read_elsewhere(client: SyncChatClient, backend_url: str) -> None:
    """The page's fallback on the next rerun: it only kept the stream id."""
    before = metrics_cancelled(backend_url)
    stream = client.stream(ChatRequest(messages=QUESTION, max_tokens=2000))
    next(iter(stream))
    assert stream.stream_id is not None
    client.cancel(stream.stream_id)
    assert metrics_cancelled(backend_url) == before + 1
    client.cancel(stream.stream_id)  # already cancelled: not an error
    items = list(stream)
    assert isinstance(items[-1], Answer)
    assert items[-1].metrics.finish_reason == "cancelled"


def test_resume_after_connection_cuts(faulty_backend_url: str) -> None:
    """Every response is cut after 3 events; the answer is still whole, nothing doubled."""
    with (
        SyncChatClient(faulty_backend_url) as client,
        client.stream(ChatRequest(messages=QUESTION, max_tokens=30, seed=5)) as stream,
    ):
        pieces = list(stream.texts())
    assert stream.answer is not None
    expected = reference_text(faulty_backend_url, QUESTION, max_tokens=30, seed=5)
    assert "".join(pieces) == stream.answer.text == expected
    assert stream.answer.metrics.reconnects >= 5
    ids = [int(event.id) for event in stream.answer.events]
    assert ids == list(range(1, len(ids) + 1))


def test_in_band_error_keeps_the_partial_answer(client: SyncChatClient) -> None:
    stream = client.stream(ChatRequest(messages=QUESTION, model="failing", max_tokens=20))
    pieces: list[str] = []
    with pytest.raises(StreamEventError):
        pieces.extend(stream.texts())
    assert stream.error is not None
    assert stream.answer is not None
    assert stream.answer.text == "".join(pieces) != ""


def test_a_backlog_right_before_an_error_is_still_shown(client: SyncChatClient) -> None:
    stream = client.stream(ChatRequest(messages=QUESTION, model="failing", max_tokens=20))
    # Read nothing until all of it, error included, has arrived: texts() then
    # starts on a backlog that ends in the error.
    poll(lambda: stream.done, until=bool)
    pieces: list[str] = []
    with pytest.raises(StreamEventError):
        pieces.extend(stream.texts())
    assert stream.answer is not None
    assert pieces == [stream.answer.text] != [""]


def test_unreachable_backend_is_a_clear_error() -> None:
    with SyncChatClient("http://127.0.0.1:9") as client:
        with pytest.raises(BackendUnreachableError):
            client.models()
        stream = client.stream(ChatRequest(messages=QUESTION))
        with pytest.raises(BackendUnreachableError, match="cannot reach"):
            list(stream)
        assert isinstance(stream.error, BackendUnreachableError)


def test_embedded_backend_in_a_thread_serves_the_api() -> None:
    backend = start_backend(backend_settings(api_keys="k1,k2"))
    try:
        assert backend.api_key == "k1"
        with SyncChatClient(backend.url, api_key=backend.api_key) as client:
            assert client.health()["status"] == "ok"
            with client.stream(ChatRequest(messages=QUESTION, max_tokens=5)) as stream:
                list(stream)
            assert stream.answer is not None
            assert stream.answer.text
    finally:
        backend.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{backend.url}/healthz", timeout=2)


def test_two_threads_stream_at_once_through_one_facade() -> None:
    """One facade shared by sessions: streams from two threads at once on one loop thread."""
    app = create_app(backend_settings(sim_tokens_per_s=200.0))
    with serve_app(app) as url, SyncChatClient(url) as client:
        results: dict[int, str] = {}

        def read(index: int) -> None:
            with client.stream(ChatRequest(messages=QUESTION, max_tokens=20, seed=index)) as s:
                results[index] = "".join(s.texts())

        threads = [threading.Thread(target=read, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for index in range(2):
            assert results[index] == reference_text(url, QUESTION, max_tokens=20, seed=index)

"""ui/streamlit_app.py run by Streamlit's own AppTest, against a live backend on a real socket.

AppTest runs the script in a thread as ``streamlit run`` does, and stops a run
that exceeds its timeout with the same request the toolbar's Stop sends.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.servers import REPO_ROOT
from tests.ui.helpers import cancelled_by_request, reference_text
from ui.client import ChatRequest
from ui.streamlit_support.page import STATE_KEY
from ui.streamlit_support.state import ChatMessage, ChatState
from ui.streamlit_support.sync_client import SyncChatClient

SCRIPT = str(REPO_ROOT / "ui" / "streamlit_app.py")


@pytest.fixture(autouse=True)
def _release_cached_clients() -> Iterator[None]:
    yield
    st.cache_resource.clear()  # on_release closes each client and its loop thread


def app_for(url: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("SSECHAT_BACKEND_URL", url)
    at = AppTest.from_file(SCRIPT, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def chat_state(at: AppTest) -> ChatState:
    state = at.session_state[STATE_KEY]
    assert isinstance(state, ChatState)
    return state


def cancelled(url: str) -> float:
    return cancelled_by_request(httpx.get(f"{url}/metrics", timeout=10).text)


def answers(at: AppTest) -> list[str]:
    return [
        "".join(md.value for md in m.markdown) for m in at.chat_message if m.name == "assistant"
    ]


def test_a_prompt_streams_an_answer_with_metrics(
    backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app_for(backend_url, monkeypatch)
    assert set(at.selectbox(key="model").options) == {
        "failing",
        "ssechat-simulated",
        "ssechat-simulated-reasoning",
    }
    assert at.selectbox(key="model").value == "ssechat-simulated"
    at.number_input(key="max_tokens").set_value(12)
    at.chat_input(key="prompt").set_value("How does SSE work?").run()
    assert not at.exception, at.exception
    expected = reference_text(
        backend_url,
        [{"role": "user", "content": "How does SSE work?"}],
        model="ssechat-simulated",
        temperature=0.7,
        max_tokens=12,
    )
    assert answers(at) == [expected]
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Tokens"] == "12"
    assert metrics["Time to first token"].endswith(" ms")
    assert float(metrics["Tokens/s"]) > 0
    state = chat_state(at)
    assert [m.role for m in state.messages] == ["user", "assistant"]
    assert state.active_stream_id is None
    assert state.messages[-1].note is None  # finished normally: no mark


def test_history_and_settings_go_into_the_next_request(
    backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app_for(backend_url, monkeypatch)
    at.text_area(key="system").set_value("Be brief.")
    at.slider(key="temp").set_value(0.2)
    at.number_input(key="max_tokens").set_value(8)
    at.chat_input(key="prompt").set_value("first").run()
    first = answers(at)[0]
    at.chat_input(key="prompt").set_value("second").run()
    assert not at.exception, at.exception
    expected = reference_text(
        backend_url,
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": first},
            {"role": "user", "content": "second"},
        ],
        model="ssechat-simulated",
        temperature=0.2,
        max_tokens=8,
    )
    assert answers(at) == [first, expected]
    at.button(key="new_chat").click().run()
    assert answers(at) == []
    assert chat_state(at).last is None


def test_stop_cancels_on_the_server_and_marks_the_partial_answer(
    backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app_for(backend_url, monkeypatch)
    at.number_input(key="max_tokens").set_value(2000)  # 40 s at 50 tokens/s
    before = cancelled(backend_url)
    at.chat_input(key="prompt").set_value("a long answer, please")
    # The run outlives the timeout: AppTest stops it as the toolbar's Stop would.
    with pytest.raises(RuntimeError, match="timed out"):
        at.run(timeout=1.5)
    assert cancelled(backend_url) == before + 1
    state = chat_state(at)
    assert state.active_stream_id is None
    reply = state.messages[-1]
    assert reply.role == "assistant"
    assert reply.content
    assert reply.note is not None
    assert reply.note.startswith("stopped · ")
    assert state.last is not None
    assert state.last.cancelled
    assert 0 < state.last.metrics.tokens < 2000


def test_a_stream_left_marked_active_is_cancelled_on_the_next_run(
    backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If an interrupted run never cleaned up, the next run sends the cancel."""
    at = app_for(backend_url, monkeypatch)
    with SyncChatClient(backend_url) as client:
        stream = client.stream(ChatRequest(messages=[{"role": "user", "content": "hi"}]))
        next(iter(stream))
        assert stream.stream_id is not None
        state = ChatState(
            messages=[ChatMessage("user", "hi"), ChatMessage("assistant", "partial")],
            active_stream_id=stream.stream_id,
        )
        at.session_state[STATE_KEY] = state
        before = cancelled(backend_url)
        at.run()
        assert cancelled(backend_url) == before + 1
        finish = [item for item in stream][-1]
    assert finish.metrics.finish_reason == "cancelled"  # type: ignore[union-attr]
    state = chat_state(at)
    assert state.active_stream_id is None
    assert state.messages[-1].note == "stopped"


def test_an_in_band_error_keeps_the_partial_answer(
    backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app_for(backend_url, monkeypatch)
    at.selectbox(key="model").set_value("failing")
    at.chat_input(key="prompt").set_value("fail please").run()
    assert not at.exception, at.exception
    assert answers(at)[0]  # the text that came before the error
    assert len(at.error) == 1
    assert chat_state(at).messages[-1].error == at.error[0].value


def test_the_answer_is_whole_after_connection_cuts(
    faulty_backend_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app_for(faulty_backend_url, monkeypatch)
    at.number_input(key="max_tokens").set_value(20)
    at.chat_input(key="prompt").set_value("resume me").run()
    assert not at.exception, at.exception
    expected = reference_text(
        faulty_backend_url,
        [{"role": "user", "content": "resume me"}],
        model="ssechat-simulated",
        temperature=0.7,
        max_tokens=20,
    )
    assert answers(at) == [expected]
    note = chat_state(at).messages[-1].note
    assert note is not None
    assert note.startswith("resumed ")
    assert note in [caption.value for caption in at.caption]


def test_an_unreachable_backend_is_shown_and_the_input_disabled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    at = app_for("http://127.0.0.1:9", monkeypatch)
    assert "cannot reach the backend" in at.sidebar.error[0].value
    assert at.chat_input(key="prompt").disabled

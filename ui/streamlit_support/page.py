"""The Streamlit twin's page: chat with history, streamed answers, Stop, settings, metrics.

Streamlit reruns this from the top on every interaction, in its script
thread. What must outlive a run lives elsewhere: the backend and the client
(``st.cache_resource``: one per process, shared by sessions) and the chat
(``ChatState`` in ``st.session_state``).

Stop. Streamlit stops a running script by raising ``StopException`` in it at
the next ``st.*`` call: the toolbar's Stop does, and so does any widget used
meanwhile (the Stop button here, a new prompt); with fast reruns (the default)
the new run starts at once in a new script thread while the old one still
unwinds. The exception unwinds through ``st.write_stream``, where a
``finally`` cancels the stream on the server and keeps the partial answer,
marked as stopped, without touching ``st.*`` (after a Stop every ``st.*``
call raises again). The stream id is kept in the session's state while the
answer streams, so a run that finds it still set (its clean-up never ran)
sends the cancel then. The next run first waits for the session's ``idle``
event (set at the end of the clean-up), so it renders the stopped answer
rather than racing it. While no token comes, the reader offers Streamlit an
interruption point every ``IDLE_SLICE_S``, so Stop does not wait for a token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import streamlit as st

from ui.client import Answer, ChatClientError, ChatRequest
from ui.present import answer_note
from ui.streamlit_support.config import StreamlitConfig
from ui.streamlit_support.embedded import EmbeddedBackend, start_backend
from ui.streamlit_support.state import ChatMessage, ChatState, to_messages
from ui.streamlit_support.sync_client import SyncChatClient, SyncChatStream

if TYPE_CHECKING:
    from fastapi import FastAPI

    from backend.config import Settings

__all__ = ["STATE_KEY", "run_page"]

logger = logging.getLogger(__name__)

STATE_KEY = "ssechat"
DEFAULT_TEMPERATURE = 0.7
DEFAULT_MAX_TOKENS = 256
MAX_TOKENS = 4096
SETTLE_TIMEOUT_S = 15.0  # longer than a cancel takes (SyncChatStream waits up to 10 s)


def _stop_backend(backend: EmbeddedBackend) -> None:
    backend.stop()


@st.cache_resource(show_spinner="Starting the embedded backend…", on_release=_stop_backend)
def embedded_backend(
    port: int, _api_factory: Callable[[Settings], FastAPI] | None = None
) -> EmbeddedBackend:
    """The backend in a daemon thread, once per process (``_api_factory`` is not hashed)."""
    # The one place the twin touches backend/: building its app to serve it.
    from backend.config import get_settings

    return start_backend(get_settings(), port=port, api_factory=_api_factory)


def _close_client(client: SyncChatClient) -> None:
    client.close()


@st.cache_resource(show_spinner=False, on_release=_close_client)
def sync_client(base_url: str, api_key: str | None, read_timeout_s: float) -> SyncChatClient:
    """One client (one event-loop thread, one connection pool) per process and backend."""
    return SyncChatClient(base_url, api_key=api_key, read_timeout_s=read_timeout_s)


def connect(
    config: StreamlitConfig, api_factory: Callable[[Settings], FastAPI] | None
) -> tuple[SyncChatClient, str]:
    """The client, and a label saying which backend it talks to."""
    if config.backend_url is not None:
        client = sync_client(config.backend_url, config.api_key, config.read_timeout_s)
        return client, config.backend_url
    backend = embedded_backend(config.backend_port, api_factory)
    read_timeout_s = max(config.read_timeout_s, backend.keepalive_s * 2 + 5)
    client = sync_client(backend.url, backend.api_key, read_timeout_s)
    return client, f"embedded · {backend.url}"


def chat_state() -> ChatState:
    state = st.session_state.get(STATE_KEY)
    if not isinstance(state, ChatState):
        state = ChatState()
        st.session_state[STATE_KEY] = state
    return state


def settle_previous_run(state: ChatState, client: SyncChatClient) -> None:
    """Let an interrupted run finish its clean-up; if it does not, cancel its stream here."""
    if state.idle.wait(SETTLE_TIMEOUT_S) and state.active_stream_id is None:
        return
    cancel_interrupted(state, client)


def cancel_interrupted(state: ChatState, client: SyncChatClient) -> None:
    """An answer still marked as streaming was interrupted without clean-up: stop it now."""
    stream_id, state.active_stream_id = state.active_stream_id, None
    if stream_id is None:
        return
    logger.info("cancelling interrupted stream %s", stream_id)
    client.cancel(stream_id)
    last = state.messages[-1] if state.messages else None
    if last is not None and last.role == "assistant" and last.note is None:
        last.note = "stopped"


def load_backend_info(state: ChatState, client: SyncChatClient) -> str | None:
    """Models and engine, once per session; the error message if the backend is unreachable."""
    if state.models:
        return None
    try:
        health = client.health()
        models = client.models()
    except ChatClientError as exc:
        return exc.message
    state.default_model = str(health.get("model") or (models[0] if models else "")) or None
    state.models = tuple(models) or ((state.default_model,) if state.default_model else ())
    state.backend_note = f"engine {health.get('engine', '?')} · model {state.default_model}"
    return None


def sidebar(state: ChatState, label: str, problem: str | None) -> ChatRequestSettings:
    with st.sidebar:
        st.header("ssechat · Streamlit")
        st.caption(f"backend {label}")
        if state.backend_note:
            st.caption(state.backend_note)
        if problem:
            st.error(problem)
        models = list(state.models)
        index = models.index(state.default_model) if state.default_model in models else 0
        model = st.selectbox("Model", models, index=index if models else None, key="model")
        system_prompt = st.text_area(
            "System prompt", "", placeholder="You are a helpful assistant.", key="system"
        )
        temperature = st.slider("Temperature", 0.0, 2.0, DEFAULT_TEMPERATURE, 0.05, key="temp")
        max_tokens = st.number_input(
            "Max tokens", 1, MAX_TOKENS, DEFAULT_MAX_TOKENS, 1, key="max_tokens"
        )
        if st.button("New chat", key="new_chat", icon=":material/add_comment:"):
            state.messages.clear()
            state.last = None
        st.subheader("Last answer")
    return ChatRequestSettings(model, system_prompt, float(temperature), int(max_tokens))


@dataclass(frozen=True, slots=True)
class ChatRequestSettings:
    """The sidebar's values for the next request."""

    model: str | None
    system_prompt: str
    temperature: float
    max_tokens: int

    def request(self, history: list[ChatMessage], prompt: str) -> ChatRequest:
        return ChatRequest(
            messages=to_messages(history, prompt, self.system_prompt),
            model=self.model,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )


def show_message(message: ChatMessage) -> None:
    with st.chat_message(message.role):
        if message.content:
            st.markdown(message.content)
        if message.error:
            st.error(message.error)
        if message.note:
            st.caption(message.note)


def show_metrics(answer: Answer | None) -> None:
    with st.sidebar:
        if answer is None:
            st.caption("no answer yet")
            return
        metrics = answer.metrics
        ttft = "–" if metrics.ttft_s is None else f"{metrics.ttft_s * 1000:.0f} ms"
        rate = "–" if metrics.tokens_per_s is None else f"{metrics.tokens_per_s:.1f}"
        # Stacked: the sidebar is too narrow for three metrics side by side.
        st.metric("Time to first token", ttft)
        st.metric("Tokens/s", rate)
        st.metric(
            "Tokens",
            metrics.tokens,
            help="completion tokens as the server's usage counts them (deltas, if it sent none)",
        )
        finish = "cancelled" if answer.cancelled else (metrics.finish_reason or "–")
        st.caption(
            f"duration {metrics.duration_s:.2f} s · finish {finish} · resumed {metrics.reconnects}×"
        )


def _yield_point() -> None:
    # Reading the session state is one of Streamlit's interruption points, and sends nothing.
    st.session_state.get(STATE_KEY)


def _chunks(stream: SyncChatStream, state: ChatState) -> Iterator[str]:
    for text in stream.texts(on_idle=_yield_point):
        if state.active_stream_id is None:
            state.active_stream_id = stream.stream_id
        yield text


def stream_answer(
    client: SyncChatClient, state: ChatState, settings: ChatRequestSettings, prompt: str
) -> None:
    """Show the prompt, stream the answer into the chat, and record both in the history."""
    request = settings.request(state.messages, prompt)
    user = ChatMessage("user", prompt)
    state.messages.append(user)
    show_message(user)
    with st.chat_message("assistant"):
        stop_slot = st.empty()
        # Any click reruns the script, which interrupts the stream: the button needs no handler.
        stop_slot.button("Stop", key="stop", icon=":material/stop_circle:")
        reply = ChatMessage("assistant", "")
        state.idle.clear()
        stream = client.stream(request)
        finished = False
        try:
            st.write_stream(_chunks(stream, state))
            finished = True
        except ChatClientError as exc:
            reply.error = exc.message
            finished = True
        finally:
            # No st.* here: after a Stop each one raises again.
            answer = stream.cancel()  # a no-op for an ended stream; else the server is told
            state.active_stream_id = None
            reply.content = answer.text
            reply.note = answer_note(answer, stopped=not finished)
            state.messages.append(reply)
            state.last = answer
            state.idle.set()
        stop_slot.empty()
        if reply.error:
            st.error(reply.error)
        if reply.note:
            st.caption(reply.note)


def run_page(
    config: StreamlitConfig, *, api_factory: Callable[[Settings], FastAPI] | None = None
) -> None:
    """The whole page, one run. ``api_factory`` replaces ``backend.app.create_app`` in
    embedded mode (the benchmark plugs in its engine)."""
    st.set_page_config(page_title="ssechat · Streamlit", page_icon="💬", layout="wide")
    state = chat_state()
    client, label = connect(config, api_factory)
    settle_previous_run(state, client)
    problem = load_backend_info(state, client)
    settings = sidebar(state, label, problem)
    # Pinned to the bottom wherever it is called; called first to know whether a prompt came.
    prompt = st.chat_input("Message the model", key="prompt", disabled=not state.models)
    for message in state.messages:
        show_message(message)
    if not state.messages and not prompt:
        st.caption("Answers stream over Server-Sent Events from the backend shown on the left.")
    if prompt:
        stream_answer(client, state, settings, prompt)
    show_metrics(state.last)

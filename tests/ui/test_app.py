"""``python ui/app.py`` as a subprocess, driven through gradio_client (the ``/chat`` API:
the same client, stream loop and text as the Chat tab, without its components)."""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import httpx
import pytest
from gradio_client import Client

from tests.servers import run_backend_process
from tests.ui.helpers import TOKENS_PER_S, reference_text, run_ui_process

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PROMPT = "How do Server-Sent Events work?"
# model, system prompt, temperature, top_p, max tokens: the sidebar's inputs.
PARAMS: dict[str, Any] = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 60}


def chat_outputs(url: str, message: str, model: str = "", max_tokens: int = 60) -> list[Any]:
    client = Client(url, verbose=False)
    try:
        job = client.submit(message, model, "", 0.7, 1.0, max_tokens, api_name="/chat")
        outputs = list(job)
        final = job.result()  # the last output, after the generator finished
        if not outputs or outputs[-1] != final:
            outputs.append(final)
        return outputs
    finally:
        client.close()


def assert_grows(messages: list[str]) -> None:
    distinct = [m for i, m in enumerate(messages) if i == 0 or m != messages[i - 1]]
    assert len(distinct) >= 3, f"expected at least 3 partial messages, got {distinct!r}"
    for shorter, longer in itertools.pairwise(distinct):
        assert longer.startswith(shorter), (shorter, longer)
        assert len(longer) > len(shorter)


def test_chat_streams_growing_partial_messages(ui_url: str) -> None:
    outputs = chat_outputs(ui_url, PROMPT)
    messages = [output[0] for output in outputs]
    assert_grows(messages)
    expected = reference_text(ui_url, [{"role": "user", "content": PROMPT}], **PARAMS)
    assert messages[-1] == expected
    metrics_html = outputs[-1][1]
    assert "first token" in metrics_html
    assert f">{PARAMS['max_tokens']}<" in metrics_html  # the token count card
    assert 'data-metric="finish" title="finish reason"><div class="ssechat-value">length<' in (
        metrics_html
    )


def test_errors_become_readable_messages_and_the_app_keeps_working(ui_url: str) -> None:
    outputs = chat_outputs(ui_url, PROMPT, model="no-such-model")
    final = outputs[-1][0]
    assert "HTTP 4" in final
    assert "no-such-model" in final  # the server's own message
    # Nothing broke: the next question is answered normally.
    assert_grows([output[0] for output in chat_outputs(ui_url, PROMPT)])


def test_chat_survives_dropped_connections(faulty_ui_url: str) -> None:
    """Every SSE response is cut after 5 events; the UI's client resumes, nothing is lost."""
    outputs = chat_outputs(faulty_ui_url, PROMPT)
    expected = reference_text(faulty_ui_url, [{"role": "user", "content": PROMPT}], **PARAMS)
    assert outputs[-1][0] == expected
    assert "resumed" in outputs[-1][1]


def test_demo_page_is_served_by_the_ui(ui_url: str) -> None:
    page = httpx.get(f"{ui_url}/demo", timeout=10)
    assert page.status_code == 200
    assert "new EventSource(" in page.text
    assert '<meta name="ssechat-api-base" content="">' in page.text


def test_remote_backend_mode() -> None:
    """``SSECHAT_BACKEND_URL``: the UI serves no API itself and talks to that backend;
    when the backend goes away, the chat says so and the UI keeps running."""
    env = {"SSECHAT_ENGINE": "simulated", "SSECHAT_SIM_TOKENS_PER_S": str(TOKENS_PER_S)}
    with contextlib.ExitStack() as ui_stack, contextlib.ExitStack() as backend_stack:
        backend = backend_stack.enter_context(run_backend_process(env))
        ui = ui_stack.enter_context(run_ui_process({"SSECHAT_BACKEND_URL": backend}))
        assert httpx.get(f"{ui}/healthz", timeout=10).status_code == 404  # UI only
        demo = httpx.get(f"{ui}/demo", timeout=10).text
        assert f'content="{backend}"' in demo
        outputs = chat_outputs(ui, PROMPT)
        assert_grows([output[0] for output in outputs])
        expected = reference_text(backend, [{"role": "user", "content": PROMPT}], **PARAMS)
        assert outputs[-1][0] == expected

        backend_stack.close()  # the backend goes away
        final = chat_outputs(ui, PROMPT)[-1][0]
        assert "Backend unreachable" in final
        assert backend in final


def test_space_style_bind_and_api_keys() -> None:
    """Bound to 0.0.0.0 (as on a Space) the UI still reaches its own API; with
    SSECHAT_API_KEYS set, the API refuses anonymous calls and the UI sends the first key."""
    env = {"SSECHAT_API_KEYS": "first-key,second-key", "GRADIO_SERVER_NAME": "0.0.0.0"}
    with run_ui_process(env) as ui:
        anonymous = httpx.post(
            f"{ui}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": PROMPT}]},
            timeout=10,
        )
        assert anonymous.status_code == 401
        outputs = chat_outputs(ui, PROMPT)
        assert_grows([output[0] for output in outputs])
        assert "⚠️" not in outputs[-1][0]

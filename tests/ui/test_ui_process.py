"""``python ui/app.py`` as a process: optional login, and a clean SIGTERM with live streams."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import httpx
import pytest
from gradio_client import Client

from tests.ui.helpers import ui_process
from tests.whatwg_sse import parse_stream

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

PROMPT = "How do Server-Sent Events work?"


def test_ui_auth_puts_the_ui_behind_a_login() -> None:
    with ui_process({"SSECHAT_UI_AUTH": "ada:s3cret:with-colon"}) as (url, _process):
        with pytest.raises(Exception):  # noqa: B017, PT011 - gradio_client raises several kinds
            Client(url, verbose=False)
        with pytest.raises(Exception):  # noqa: B017, PT011
            Client(url, auth=("ada", "wrong"), verbose=False)
        client = Client(url, auth=("ada", "s3cret:with-colon"), verbose=False)
        try:
            job = client.submit(PROMPT, "", "", 0.7, 1.0, 20, api_name="/chat")
            final = job.result()
        finally:
            client.close()
        assert final[0].strip()
        assert "⚠️" not in final[0]


def test_sigterm_ends_live_streams_with_a_final_event() -> None:
    env = {"SSECHAT_SIM_TOKENS_PER_S": "5"}
    with ui_process(env) as (url, process):
        raw: list[bytes] = []
        started = threading.Event()

        def read_stream() -> None:
            body: dict[str, Any] = {
                "messages": [{"role": "user", "content": PROMPT}],
                "stream": True,
                "max_tokens": 500,
            }
            with (
                httpx.Client(timeout=30) as http,
                http.stream("POST", f"{url}/v1/chat/completions", json=body) as response,
            ):
                for chunk in response.iter_bytes():
                    raw.append(chunk)
                    started.set()

        reader = threading.Thread(target=read_stream)
        reader.start()
        assert started.wait(30)
        process.send_signal(signal.SIGTERM)
        reader.join(30)
        assert not reader.is_alive()
        assert process.wait(30) == 0
    payloads = [event.data for event in parse_stream(b"".join(raw))[0]]
    assert payloads[-1] == "[DONE]"
    assert json.loads(payloads[-2])["choices"][0]["finish_reason"] == "cancelled"

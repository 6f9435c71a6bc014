"""A started SSE response streams the rest of its body from the app's outermost layer.

Served by uvicorn on real sockets: through ``create_app`` (every layer of
ours and FastAPI's, with a recording layer among them), and through a bare
``StreamHandoff`` around a response whose subscription we control.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.app import create_app
from backend.config import Settings
from backend.http.handoff import StreamHandoff, handoff_slot
from tests.backend.http.raw import connect, metric, wait_until
from tests.backend.http.test_sse_disconnect import SwallowingSubscription, app_for
from tests.servers import serve_app

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Tell me a story."}]
ACTIVE = "ssechat_streams_active"  # SSE responses the server has open


class Recorder:
    """A middleware that notes when its call has returned."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.returned = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.returned.set()


@pytest.fixture(scope="module")
def recorded() -> Iterator[tuple[str, list[Recorder]]]:
    app = create_app(Settings(engine="simulated", sim_tokens_per_s=20.0))
    recorders: list[Recorder] = []

    class Recording(Recorder):
        def __init__(self, inner: ASGIApp) -> None:
            super().__init__(inner)
            recorders.append(self)

    app.add_middleware(Recording)
    with serve_app(app) as base_url:
        yield base_url, recorders


def test_the_layers_return_while_the_stream_flows(recorded: tuple[str, list[Recorder]]) -> None:
    base_url, recorders = recorded
    body = {"messages": MESSAGES, "stream": True, "max_tokens": 40}
    lines: list[str] = []
    with httpx.stream("POST", base_url + CHAT, json=body, timeout=30) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = response.iter_lines()
        while not any(line.startswith("data: ") for line in lines):
            lines.append(next(events))
        # The layers unwind while the answer is still coming: its response is still
        # open on the server (streamed in place, they would return only after it).
        (recorder,) = recorders
        wait_until(recorder.returned.is_set, 10, "the layers to return")
        assert metric(base_url, ACTIVE) == 1
        assert "data: [DONE]" not in lines
        lines.extend(events)
    data = [line[6:] for line in lines if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    assert len(data) >= 40  # role chunk, 40 tokens' chunks (or fewer merged), finish, [DONE]


def test_a_cut_stream_still_frees_its_reader(recorded: tuple[str, list[Recorder]]) -> None:
    base_url, _ = recorded
    body = {"messages": MESSAGES, "stream": True, "max_tokens": 200}
    with httpx.stream("POST", base_url + CHAT, json=body, timeout=30) as response:
        stream_id = response.headers["x-stream-id"]
        for line in response.iter_lines():
            if line.startswith("data: "):
                break
    wait_until(lambda: metric(base_url, ACTIVE) == 0, 10, f"the reader of {stream_id} to detach")


class FailingAfter:
    """A layer that raises once the app below it has returned (after the handoff).

    It keeps what was handed off alive, so the test sees it released by the
    handoff itself, not by the garbage collector finalizing a dropped generator."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.kept: list[object] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        slot = handoff_slot(scope)
        assert slot is not None
        assert slot.rest is not None  # the response did hand off
        self.kept.append(slot.rest)
        raise RuntimeError("a layer failed on the way out")


def test_a_layer_failing_after_the_handoff_still_releases_the_subscription() -> None:
    subscription = SwallowingSubscription(0.2, swallow_all=False, keepalive=True)
    failing = FailingAfter(app_for(subscription))
    app = StreamHandoff(failing)
    with serve_app(app, lifespan="off") as base_url:
        sock = connect(base_url)
        sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"data: first\n\n" not in received:
            received += sock.recv(65536)
        wait_until(subscription.closed.is_set, 10, "the handed-off rest to be released")
        sock.close()
    assert failing.kept  # still referenced: released by the handoff, not collected

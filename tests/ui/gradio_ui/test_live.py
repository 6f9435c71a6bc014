"""ui/gradio_ui/live.py: an answer as it arrives, and Stop, against a live backend."""

from __future__ import annotations

import asyncio

from tests.ui.gradio_ui.answers import REASONING_THEN_TOOL_THEN_TEXT, live_of
from tests.ui.helpers import cancelled_by_request
from ui.client import ChatClient, ChatRequest, make_http_client
from ui.gradio_ui.live import Handoff, LiveAnswer, Run, Runs, updates, whole

QUESTION = [{"role": "user", "content": "How do Server-Sent Events work?"}]
LONG = ChatRequest(messages=QUESTION, max_tokens=2000)  # 40 s at 50 tokens/s


def test_deltas_of_every_kind_accumulate() -> None:
    live = live_of(REASONING_THEN_TOOL_THEN_TEXT)
    assert live.reasoning == "Let me see."
    assert live.content == "It is sunny."
    assert live.tools[0].name == "weather"
    assert live.tools[0].arguments == '{"city": "Oslo"}'
    assert not live.reasoning_open
    assert not live.done
    assert live.tokens == 6  # the deltas that carried text
    assert live.first_token_s == 0.1
    assert live.reasoning_s() == 0.3  # from the request to the first other delta


async def test_an_answer_streams_to_its_end(backend_url: str) -> None:
    async with make_http_client(backend_url) as http:
        client = ChatClient(http)
        request = ChatRequest(messages=QUESTION, max_tokens=20, seed=7)
        seen = [(live.content, live.done) async for live in updates(client, request, Run())]
        reference = await client.complete(request)
    assert seen[-1] == (reference.text, True)
    assert [done for _, done in seen].count(True) == 1
    assert len(seen) >= 3  # partial states on the way


async def test_stop_ends_the_stream_with_the_stopped_answer(backend_url: str) -> None:
    async with make_http_client(backend_url) as http:
        metrics_before = cancelled_by_request((await http.get("/metrics")).text)
        run = Run()
        last = LiveAnswer()
        async for live in updates(ChatClient(http), LONG, run):
            last = live
            if live.tokens == 5 and not run.stopped.is_set():
                await run.stop()
        metrics_after = cancelled_by_request((await http.get("/metrics")).text)
    assert last.done
    assert last.stopped
    assert last.answer is not None
    assert last.answer.metrics.finish_reason == "cancelled"
    assert 5 <= last.tokens < 2000
    assert metrics_after == metrics_before + 1  # the server was told


async def test_stop_before_the_request_starts_asks_the_server_nothing(backend_url: str) -> None:
    async with make_http_client(backend_url) as http:
        run = Run()
        await run.stop()
        answers = [live async for live in updates(ChatClient(http), LONG, run)]
    assert len(answers) == 1
    assert answers[0].stopped


async def test_a_non_streamed_answer_and_stopping_one(backend_url: str) -> None:
    async with make_http_client(backend_url) as http:
        client = ChatClient(http)
        (done,) = [
            live
            async for live in whole(client, ChatRequest(messages=QUESTION, max_tokens=5), Run())
        ]
        assert done.answer is not None
        assert not done.streamed
        assert done.answer.metrics.tokens == 5  # the server's count: there are no deltas
        run = Run()
        stopping = asyncio.get_running_loop().call_later(0.3, lambda: run.stopped.set())
        (stopped,) = [live async for live in whole(client, LONG, run)]
        stopping.cancel()
    assert stopped.stopped
    assert stopped.answer is not None
    assert stopped.answer.metrics.finish_reason == "cancelled"
    assert 0.3 <= stopped.elapsed_s() < 10


async def test_runs_find_the_run_of_a_session_and_tab() -> None:
    runs = Runs()
    assert not await runs.stop("s1", "chat")
    with runs.start("s1", "chat") as run:
        assert runs.active("s1", "chat")
        assert not runs.active("s1", "compare")
        assert await runs.stop("s1", "chat")
        assert run.stopped.is_set()
    assert not runs.active("s1", "chat")
    with runs.start(None, "chat"):  # no session (an API call): nothing can stop it by name
        assert not runs.active(None, "chat")


def test_handoff_is_taken_once_and_bounded() -> None:
    handoff: Handoff[int] = Handoff(limit=2)
    handoff.put("a", 1)
    handoff.put("b", 2)
    handoff.put("c", 3)
    assert handoff.take("a") is None  # the oldest went
    assert handoff.take("c") == 3
    assert handoff.take("c") is None
    handoff.put(None, 4)
    assert handoff.take(None) is None

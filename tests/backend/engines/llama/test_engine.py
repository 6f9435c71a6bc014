"""The llama engine on the real Gemma 3 270M model.

The tests share one loaded model (conftest.py) and keep ``max_tokens`` small;
they are skipped only when llama-cpp-python cannot be imported.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator

import pytest

from backend.engines.base import ChatMessage, EngineError, GenerationRequest, TokenDelta
from backend.engines.llama import TURN_STOPS, LlamaEngine, build_prompt, load_llama_engine
from tests.backend.engines.llama import helpers


@pytest.mark.llama
async def test_answers_and_stops_at_the_next_turn(engine: LlamaEngine) -> None:
    assert engine.name == "llama"
    assert engine.models == ("gemma-3-270m",)
    deltas = await helpers.collect(engine.stream(helpers.request("What is the capital of France?")))
    text = helpers.text(deltas)
    assert "Paris" in text
    assert text == text.strip()
    assert not any(stop.strip() in text for stop in TURN_STOPS)
    final = deltas[-1]
    assert final.finish_reason == "stop"
    assert final.stop_sequence is None  # the transcript's turn stop is not the client's
    assert final.usage is not None
    assert final.usage.prompt_tokens > 0
    assert 0 < final.usage.completion_tokens < 20


@pytest.mark.llama
async def test_max_tokens_ends_with_length(engine: LlamaEngine) -> None:
    request = helpers.request("Tell me a long story about a dragon and a knight.", max_tokens=5)
    deltas = await helpers.collect(engine.stream(request))
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.completion_tokens == 5
    assert helpers.text(deltas)


@pytest.mark.llama
async def test_same_seed_same_text(engine: LlamaEngine) -> None:
    question = "Tell me about your day."
    first = helpers.text(
        await helpers.collect(engine.stream(helpers.request(question, temperature=1.0, seed=7)))
    )
    # Other seeds in between change the cache and the sampler; seed 7 must not care.
    others = {
        helpers.text(
            await helpers.collect(
                engine.stream(helpers.request(question, temperature=1.0, seed=seed))
            )
        )
        for seed in (8, 9)
    }
    again = helpers.text(
        await helpers.collect(engine.stream(helpers.request(question, temperature=1.0, seed=7)))
    )
    assert again == first
    assert others != {first}, "the seed has no effect"


@pytest.mark.llama
async def test_cancel_stops_the_worker_and_frees_the_model(engine: LlamaEngine) -> None:
    received: list[TokenDelta] = []
    three = asyncio.Event()

    async def consume() -> None:
        async for delta in engine.stream(
            helpers.request("Write a long essay on the sea.", max_tokens=400)
        ):
            received.append(delta)
            if len(received) == 3:
                three.set()

    task = asyncio.create_task(consume())
    await three.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The stream waited for the worker to leave, so the model is free now,
    # long before 400 tokens could have been generated.
    assert not engine.busy
    assert len(received) == 3
    assert all(delta.finish_reason is None for delta in received)
    deltas = await helpers.collect(engine.stream(helpers.request("What is the capital of France?")))
    assert "Paris" in helpers.text(deltas)


@pytest.mark.llama
async def test_request_cancelled_while_queued_never_waits(engine: LlamaEngine) -> None:
    started = asyncio.Event()

    async def first() -> list[TokenDelta]:
        out: list[TokenDelta] = []
        async for delta in engine.stream(
            helpers.request("Write a poem about rain.", max_tokens=48)
        ):
            out.append(delta)
            started.set()
        return out

    async def second() -> list[TokenDelta]:
        return await helpers.collect(engine.stream(helpers.request("Hi!")))

    running = asyncio.create_task(first())
    await started.wait()
    queued = asyncio.create_task(second())
    for _ in range(5):  # let it submit its job behind the running one
        await asyncio.sleep(0)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    # Cancelling the queued request did not wait for the running one.
    assert not running.done()
    deltas = await running
    assert deltas[-1].finish_reason in ("stop", "length")


@pytest.mark.llama
async def test_concurrent_requests_do_not_mix(engine: LlamaEngine) -> None:
    first = helpers.request("What is the capital of France?")
    second = helpers.request("Name a color of the sky.", max_tokens=16)
    alone = [helpers.text(await helpers.collect(engine.stream(r))) for r in (first, second)]
    together = await asyncio.gather(
        helpers.collect(engine.stream(first)), helpers.collect(engine.stream(second))
    )
    assert [helpers.text(deltas) for deltas in together] == alone
    assert all(text for text in alone)


@pytest.mark.llama
async def test_stop_split_across_tokens_never_leaks(engine: LlamaEngine) -> None:
    question = "Tell me a long story about a dragon and a knight."
    baseline = await helpers.collect(engine.stream(helpers.request(question, max_tokens=24)))
    full = helpers.text(baseline)
    # A stop made of the end of one delta and the start of the next spans a token boundary.
    stop = next(
        left.text[-2:] + right.text[:2]
        for left, right in itertools.pairwise(baseline)
        if len(left.text.strip()) >= 2 and len(right.text.strip()) >= 2
    )
    assert stop in full
    deltas = await helpers.collect(
        engine.stream(helpers.request(question, max_tokens=24, stop=(stop,)))
    )
    assert helpers.text(deltas) == full[: full.index(stop)]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].stop_sequence == stop  # the client's stop is named
    # A stop that starts matching but never completes loses nothing.
    never = (stop[:3] + "\x00",)
    deltas = await helpers.collect(
        engine.stream(helpers.request(question, max_tokens=24, stop=never))
    )
    assert helpers.text(deltas) == full
    assert deltas[-1].stop_sequence is None


@pytest.mark.llama
def test_long_token_pieces_round_trip(engine: LlamaEngine) -> None:
    # Gemma has pieces longer than 32 bytes, which Llama.detokenize drops.
    word = " পাকিস্তানের"
    tokens = engine.tokenize(word)
    assert len(word.encode()) > 32
    assert len(tokens) == 1
    assert engine.detokenize(tokens) == word.encode()
    text = "Streaming 流式输出 🚀 ok"
    assert engine.detokenize(engine.tokenize(text)).decode() == text


@pytest.mark.llama
async def test_aclose_ends_running_streams_and_refuses_new_ones() -> None:
    pytest.importorskip("llama_cpp")
    closing = load_llama_engine(n_ctx=512)
    stream = closing.stream(helpers.request("Write a long essay on the sea.", max_tokens=400))
    assert (await anext(stream)).finish_reason is None
    await closing.aclose()
    with pytest.raises(EngineError, match="closed"):
        async for _ in stream:
            pass
    assert not closing.busy
    with pytest.raises(EngineError, match="closed"):
        await anext(closing.stream(helpers.request("Hi")))


@pytest.fixture(scope="module")
def small_engine() -> Iterator[LlamaEngine]:
    pytest.importorskip("llama_cpp")
    loaded = load_llama_engine(n_ctx=256)
    yield loaded
    asyncio.run(loaded.aclose())


@pytest.mark.llama
async def test_old_turns_are_dropped_to_fit_the_context(small_engine: LlamaEngine) -> None:
    history: list[ChatMessage] = []
    for index in range(10):
        history.append(ChatMessage("user", f"Tell me fact number {index} about the ocean, please."))
        history.append(ChatMessage("assistant", f"Fact {index}: the ocean is deep and salty."))
    messages = (*history, ChatMessage("user", "What is the capital of France?"))
    assert len(small_engine.tokenize(build_prompt(messages))) > 256
    request = GenerationRequest(messages=messages, model="gemma-3-270m", max_tokens=16)
    deltas = await helpers.collect(small_engine.stream(request))
    usage = deltas[-1].usage
    assert usage is not None
    assert usage.prompt_tokens + 16 <= 256
    assert helpers.text(deltas)


@pytest.mark.llama
async def test_a_prompt_longer_than_the_context_is_a_clear_error(
    small_engine: LlamaEngine,
) -> None:
    request = helpers.request("Please summarise this. " + "The sea is wide and blue. " * 80)
    with pytest.raises(EngineError, match="context") as caught:
        await helpers.collect(small_engine.stream(request))
    assert caught.value.code == "context_length_exceeded"
    assert not small_engine.busy
    assert helpers.text(
        await helpers.collect(small_engine.stream(helpers.request("Hi!", max_tokens=8)))
    )

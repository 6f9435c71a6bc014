"""The llama engine: text shaping as pure units, then the real Gemma 3 270M model.

Model tests load the model once per module and keep ``max_tokens`` small;
they are skipped only when llama-cpp-python cannot be imported.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import pytest

from backend.config import Settings
from backend.engines.base import ChatMessage, EngineError, GenerationRequest, TokenDelta
from backend.engines.llama import (
    TURN_STOPS,
    AnswerTrimmer,
    LlamaEngine,
    build_prompt,
    load_llama_engine,
)
from backend.engines.text import StopMatcher

# --- stop sequences, pure ----------------------------------------------------


def _run_matcher(pieces: list[str], stops: tuple[str, ...]) -> tuple[list[str], bool]:
    matcher = StopMatcher(stops)
    out = [matcher.feed(piece) for piece in pieces]
    out.append(matcher.flush())
    return out, matcher.stopped


@pytest.mark.parametrize(
    ("pieces", "stops", "emitted", "stopped"),
    [
        # The stop arrives in three pieces; what precedes it is released as soon as it is safe.
        (
            ["Paris.", "\n", "\nUs", "er", ":", " next"],
            ("\nUser:",),
            ["Paris.", "", "\n", "", "", "", ""],
            True,
        ),
        # A false start is held, then released when it stops matching.
        (["a\nUs", "e it"], ("\nUser:",), ["a", "\nUse it", ""], False),
        # The earliest complete stop wins, even while a longer one is still held.
        (["xx ab", "cd"], ("abcx", "bc"), ["xx ", "a", ""], True),
        # A stop at the very start leaves nothing.
        (["EN", "D and more"], ("END",), ["", "", ""], True),
        # Held text that never completes a stop comes out at the end.
        (["done\nUse"], ("\nUser:",), ["done", "\nUse"], False),
        # Empty stop strings are ignored.
        (["text"], ("",), ["text", ""], False),
        # Multi-byte characters can be part of a stop.
        (["流式", "输", "出!"], ("输出",), ["流式", "", "", ""], True),
    ],
)
def test_stop_matcher_holds_back_split_stops(
    pieces: list[str], stops: tuple[str, ...], emitted: list[str], stopped: bool
) -> None:
    out, did_stop = _run_matcher(pieces, stops)
    assert out == emitted
    assert did_stop is stopped


def _splits(text: str) -> Iterator[list[str]]:
    """Every way of cutting ``text`` into consecutive pieces."""
    for mask in itertools.product((False, True), repeat=len(text) - 1):
        pieces, start = [], 0
        for index, cut in enumerate(mask, start=1):
            if cut:
                pieces.append(text[start:index])
                start = index
        pieces.append(text[start:])
        yield pieces


@pytest.mark.parametrize(
    ("text", "stops"),
    [
        ("ab\nUsx\nUser: q", ("\nUser:",)),
        ("aaab aab", ("aab",)),
        ("no stop here\nU", ("\nUser:", "zz")),
        ("héllo wörld", ("ö", "llo")),
    ],
)
def test_stop_matcher_same_result_for_every_split(text: str, stops: tuple[str, ...]) -> None:
    cuts = [i for i in (text.find(s) for s in stops) if i >= 0]
    expected = text[: min(cuts)] if cuts else text
    for pieces in _splits(text):
        out, stopped = _run_matcher(pieces, stops)
        assert "".join(out) == expected, pieces
        assert stopped is bool(cuts)


def test_answer_trimmer_drops_outer_whitespace_only() -> None:
    trimmer = AnswerTrimmer()
    pieces = [" ", " Crisp", " leaves", "\n", "\n", "fall", "\n"]
    out = [trimmer.feed(piece) for piece in pieces]
    assert out == ["", "Crisp", " leaves", "", "", "\n\nfall", ""]


def test_prompt_is_a_transcript_ending_at_the_assistant_turn() -> None:
    prompt = build_prompt(
        (
            ChatMessage("system", "You are terse."),
            ChatMessage("user", "Hi"),
            ChatMessage("assistant", "Hello."),
            ChatMessage("user", " Why? "),
        )
    )
    assert prompt.startswith("You are terse.\n\n")
    assert prompt.endswith("\n\nUser: Hi\nAssistant: Hello.\n\nUser: Why?\nAssistant:")


# --- the real model ----------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[LlamaEngine]:
    pytest.importorskip("llama_cpp")
    loaded = load_llama_engine(Settings(engine="llama", llama_n_ctx=2048))
    yield loaded
    asyncio.run(loaded.aclose())


def _request(
    question: str,
    *,
    max_tokens: int = 20,
    temperature: float = 0.0,
    seed: int | None = None,
    stop: tuple[str, ...] = (),
) -> GenerationRequest:
    return GenerationRequest(
        messages=(ChatMessage("user", question),),
        model="gemma-3-270m",
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
        stop=stop,
    )


async def _collect(deltas: AsyncIterator[TokenDelta]) -> list[TokenDelta]:
    out = [delta async for delta in deltas]
    assert out, "no deltas"
    assert out[-1].finish_reason is not None
    assert out[-1].usage is not None
    assert all(delta.finish_reason is None for delta in out[:-1])
    return out


def _text(deltas: list[TokenDelta]) -> str:
    return "".join(delta.text for delta in deltas)


@pytest.mark.llama
async def test_answers_and_stops_at_the_next_turn(engine: LlamaEngine) -> None:
    assert engine.name == "llama"
    assert engine.models == ("gemma-3-270m",)
    deltas = await _collect(engine.stream(_request("What is the capital of France?")))
    text = _text(deltas)
    assert "Paris" in text
    assert text == text.strip()
    assert not any(stop.strip() in text for stop in TURN_STOPS)
    final = deltas[-1]
    assert final.finish_reason == "stop"
    assert final.usage is not None
    assert final.usage.prompt_tokens > 0
    assert 0 < final.usage.completion_tokens < 20


@pytest.mark.llama
async def test_max_tokens_ends_with_length(engine: LlamaEngine) -> None:
    request = _request("Tell me a long story about a dragon and a knight.", max_tokens=5)
    deltas = await _collect(engine.stream(request))
    assert deltas[-1].finish_reason == "length"
    assert deltas[-1].usage is not None
    assert deltas[-1].usage.completion_tokens == 5
    assert _text(deltas)


@pytest.mark.llama
async def test_same_seed_same_text(engine: LlamaEngine) -> None:
    question = "Tell me about your day."
    first = _text(await _collect(engine.stream(_request(question, temperature=1.0, seed=7))))
    # Other seeds in between change the cache and the sampler; seed 7 must not care.
    others = {
        _text(await _collect(engine.stream(_request(question, temperature=1.0, seed=seed))))
        for seed in (8, 9)
    }
    again = _text(await _collect(engine.stream(_request(question, temperature=1.0, seed=7))))
    assert again == first
    assert others != {first}, "the seed has no effect"


@pytest.mark.llama
async def test_cancel_stops_the_worker_and_frees_the_model(engine: LlamaEngine) -> None:
    received: list[TokenDelta] = []
    three = asyncio.Event()

    async def consume() -> None:
        async for delta in engine.stream(
            _request("Write a long essay on the sea.", max_tokens=400)
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
    deltas = await _collect(engine.stream(_request("What is the capital of France?")))
    assert "Paris" in _text(deltas)


@pytest.mark.llama
async def test_request_cancelled_while_queued_never_waits(engine: LlamaEngine) -> None:
    started = asyncio.Event()

    async def first() -> list[TokenDelta]:
        out: list[TokenDelta] = []
        async for delta in engine.stream(_request("Write a poem about rain.", max_tokens=48)):
            out.append(delta)
            started.set()
        return out

    async def second() -> list[TokenDelta]:
        return await _collect(engine.stream(_request("Hi!")))

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
    first = _request("What is the capital of France?")
    second = _request("Name a color of the sky.", max_tokens=16)
    alone = [_text(await _collect(engine.stream(r))) for r in (first, second)]
    together = await asyncio.gather(_collect(engine.stream(first)), _collect(engine.stream(second)))
    assert [_text(deltas) for deltas in together] == alone
    assert all(text for text in alone)


@pytest.mark.llama
async def test_stop_split_across_tokens_never_leaks(engine: LlamaEngine) -> None:
    question = "Tell me a long story about a dragon and a knight."
    baseline = await _collect(engine.stream(_request(question, max_tokens=24)))
    full = _text(baseline)
    # A stop made of the end of one delta and the start of the next spans a token boundary.
    stop = next(
        left.text[-2:] + right.text[:2]
        for left, right in itertools.pairwise(baseline)
        if len(left.text.strip()) >= 2 and len(right.text.strip()) >= 2
    )
    assert stop in full
    deltas = await _collect(engine.stream(_request(question, max_tokens=24, stop=(stop,))))
    assert _text(deltas) == full[: full.index(stop)]
    assert deltas[-1].finish_reason == "stop"
    # A stop that starts matching but never completes loses nothing.
    never = (stop[:3] + "\x00",)
    deltas = await _collect(engine.stream(_request(question, max_tokens=24, stop=never)))
    assert _text(deltas) == full


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
    closing = load_llama_engine(Settings(engine="llama", llama_n_ctx=512))
    stream = closing.stream(_request("Write a long essay on the sea.", max_tokens=400))
    assert (await anext(stream)).finish_reason is None
    await closing.aclose()
    with pytest.raises(EngineError, match="closed"):
        async for _ in stream:
            pass
    assert not closing.busy
    with pytest.raises(EngineError, match="closed"):
        await anext(closing.stream(_request("Hi")))


@pytest.fixture(scope="module")
def small_engine() -> Iterator[LlamaEngine]:
    pytest.importorskip("llama_cpp")
    loaded = load_llama_engine(Settings(engine="llama", llama_n_ctx=256))
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
    deltas = await _collect(small_engine.stream(request))
    usage = deltas[-1].usage
    assert usage is not None
    assert usage.prompt_tokens + 16 <= 256
    assert _text(deltas)


@pytest.mark.llama
async def test_a_prompt_longer_than_the_context_is_a_clear_error(
    small_engine: LlamaEngine,
) -> None:
    request = _request("Please summarise this. " + "The sea is wide and blue. " * 80)
    with pytest.raises(EngineError, match="context") as caught:
        await _collect(small_engine.stream(request))
    assert caught.value.code == "context_length_exceeded"
    assert not small_engine.busy
    assert _text(await _collect(small_engine.stream(_request("Hi!", max_tokens=8))))

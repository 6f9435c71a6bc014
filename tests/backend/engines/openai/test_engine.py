"""The ``openai`` engine against a real upstream on a real socket: text, request
shape, faults, cancellation, models.

One ``FaultyUpstream`` (tests/backend/engines/upstream_faults.py) runs under
uvicorn for the whole package (conftest.py); each test picks its scenario
through the URL. Short timeouts keep the stall and trickle cases fast.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator

import httpx
import pytest

from backend.engines.base import TokenDelta, Usage
from backend.engines.openai import (
    DEFAULT_MODEL,
    OpenAIUpstreamEngine,
    UpstreamError,
    estimate_prompt_tokens,
)
from backend.engines.simulated import DEFAULT_MODEL as SIMULATED_MODEL
from tests.backend.engines.openai.helpers import (
    REQUEST,
    Upstream,
    make_engine,
    wait_disconnected,
)
from tests.backend.engines.upstream_faults import ANSWER, API_KEY, PIECES, USAGE
from tests.servers import free_port, run_backend_process


async def collect(engine: OpenAIUpstreamEngine) -> list[TokenDelta]:
    return [delta async for delta in engine.stream(REQUEST)]


async def collect_until_error(engine: OpenAIUpstreamEngine) -> tuple[str, UpstreamError]:
    """The text relayed before the stream failed, and the failure."""
    texts: list[str] = []

    async def drain() -> None:
        async for delta in engine.stream(REQUEST):
            texts.append(delta.text)

    with pytest.raises(UpstreamError) as info:
        await drain()
    return "".join(texts), info.value


# --- happy path and request shape -----------------------------------------------------


async def test_happy_path_relays_exact_text_and_upstream_usage(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    deltas = await collect(make_engine(client, upstream.url("ok")))

    assert "".join(d.text for d in deltas) == ANSWER
    *body, last = deltas
    assert all(d.text and d.finish_reason is None and d.usage is None for d in body)
    assert last.finish_reason == "stop"
    assert last.usage == Usage(USAGE["prompt_tokens"], USAGE["completion_tokens"])


async def test_request_carries_every_generation_parameter(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    await collect(make_engine(client, upstream.url("ok")))

    sent = upstream.last().body
    assert sent == {
        "model": "upstream-model",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say hello, please."},
        ],
        "stream": True,
        "max_tokens": 32,
        "temperature": 0.5,
        "top_p": 0.9,
        "seed": 7,
        "stop": ["\n\nUser:"],
        "stream_options": {"include_usage": True},
    }
    assert upstream.last().headers["accept"] == "text/event-stream"


async def test_stream_options_off_is_not_sent_and_usage_is_estimated(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    # "strict" answers 400 to a request that carries stream_options.
    engine = make_engine(client, upstream.url("strict"), include_usage=False)
    deltas = await collect(engine)

    assert "stream_options" not in upstream.last().body
    assert "".join(d.text for d in deltas) == ANSWER
    assert deltas[-1].usage == Usage(estimate_prompt_tokens(REQUEST), len(PIECES))


async def test_stream_options_on_reaches_a_strict_upstream(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    _, error = await collect_until_error(make_engine(client, upstream.url("strict")))

    assert upstream.last().body["stream_options"] == {"include_usage": True}
    assert error.code == "upstream_bad_request"
    assert error.status == 400
    assert "Unrecognized request argument supplied: stream_options" in error.message


async def test_api_key_is_sent_as_bearer_token(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    deltas = await collect(make_engine(client, upstream.url("auth"), api_key=API_KEY))

    assert upstream.last().headers["authorization"] == f"Bearer {API_KEY}"
    assert "".join(d.text for d in deltas) == ANSWER


async def test_no_authorization_header_without_a_key(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    await collect(make_engine(client, upstream.url("ok")))

    assert "authorization" not in upstream.last().headers


async def test_surrogate_halves_split_across_chunks_become_whole_characters(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    deltas = await collect(make_engine(client, upstream.url("surrogates")))

    assert [d.text for d in deltas] == ["a", "😀b", "\ufffd", ""]
    for delta in deltas:
        delta.text.encode("utf-8")  # a lone surrogate would raise here


async def test_finish_reason_without_done_keeps_the_answer(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    deltas = await collect(make_engine(client, upstream.url("finish-no-done")))

    assert "".join(d.text for d in deltas) == "complete"
    assert deltas[-1].finish_reason == "length"


async def test_done_without_finish_reason_counts_as_stop(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    deltas = await collect(make_engine(client, upstream.url("done-only")))

    assert "".join(d.text for d in deltas) == "fine"
    assert deltas[-1].finish_reason == "stop"


# --- faults ---------------------------------------------------------------------------


async def test_connection_refused(client: httpx.AsyncClient) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    _, error = await collect_until_error(make_engine(client, url))

    assert error.code == "upstream_unreachable"
    assert error.error_type == "upstream_error"
    assert "cannot connect to upstream" in error.message


@pytest.mark.parametrize(
    ("scenario", "status", "code", "detail"),
    [
        ("status-500", 500, "upstream_server_error", "The model is overloaded, try later"),
        ("status-503", 503, "upstream_server_error", "The model is overloaded, try later"),
        ("status-502-text", 502, "upstream_server_error", "<html>Bad Gateway from the proxy"),
        ("status-429", 429, "upstream_rate_limited", "The model is overloaded, try later"),
        ("status-404", 404, "upstream_not_found", "The model is overloaded, try later"),
        ("status-422", 422, "upstream_bad_request", "The model is overloaded, try later"),
    ],
)
async def test_upstream_http_error_carries_status_and_message(
    upstream: Upstream,
    client: httpx.AsyncClient,
    scenario: str,
    status: int,
    code: str,
    detail: str,
) -> None:
    text, error = await collect_until_error(make_engine(client, upstream.url(scenario)))

    assert text == ""
    assert error.code == code
    assert error.status == status
    assert f"HTTP {status}" in error.message
    assert detail in error.message
    # Only a refusal of the request itself is the client's error; the rest, the gateway's.
    assert error.error_type == ("invalid_request_error" if status == 422 else "upstream_error")


async def test_wrong_api_key_never_appears_in_error_or_logs(
    upstream: Upstream, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    wrong_key = "sk-wrong-key-do-not-leak-4242"
    caplog.set_level(logging.DEBUG)
    engine = make_engine(client, upstream.url("auth"), api_key=wrong_key)
    _, error = await collect_until_error(engine)

    # The upstream did echo it back: the engine had something to scrub.
    assert upstream.last().headers["authorization"] == f"Bearer {wrong_key}"
    assert error.code == "upstream_auth_failed"
    assert error.status == 401
    assert "Incorrect API key provided: [redacted]" in error.message
    for text in (error.message, str(error), repr(error), caplog.text):
        assert wrong_key not in text


async def test_connection_dropped_mid_stream(upstream: Upstream, client: httpx.AsyncClient) -> None:
    text, error = await collect_until_error(make_engine(client, upstream.url("drop")))

    assert text == "partial "
    assert error.code == "upstream_disconnected"


async def test_clean_end_without_finish_or_done_is_incomplete(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    text, error = await collect_until_error(make_engine(client, upstream.url("truncated")))

    assert text == "half an ans"
    assert error.code == "upstream_incomplete"


async def test_chunk_that_is_not_json(upstream: Upstream, client: httpx.AsyncClient) -> None:
    text, error = await collect_until_error(make_engine(client, upstream.url("bad-json")))

    assert text == "ok "
    assert error.code == "upstream_malformed"
    assert "not valid JSON" in error.message


async def test_json_that_is_not_a_chunk(upstream: Upstream, client: httpx.AsyncClient) -> None:
    _, error = await collect_until_error(make_engine(client, upstream.url("not-a-chunk")))

    assert error.code == "upstream_malformed"
    assert "not a chat.completion.chunk" in error.message


async def test_response_that_is_not_an_event_stream(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    _, error = await collect_until_error(make_engine(client, upstream.url("not-sse")))

    assert error.code == "upstream_malformed"
    assert "application/json" in error.message


async def test_event_stream_without_any_event(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    _, error = await collect_until_error(make_engine(client, upstream.url("ndjson")))

    assert error.code == "upstream_malformed"
    assert "without sending any SSE event" in error.message


async def test_in_band_error_event(upstream: Upstream, client: httpx.AsyncClient) -> None:
    text, error = await collect_until_error(make_engine(client, upstream.url("error-event")))

    assert text == "some text"
    assert error.code == "upstream_stream_error"
    assert "CUDA out of memory" in error.message


async def test_stall_times_out_and_closes_the_upstream_connection(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    text, error = await collect_until_error(make_engine(client, upstream.url("stall")))

    assert text == "thinking"
    assert error.code == "upstream_timeout"
    assert await wait_disconnected(upstream.last())


async def test_trickle_that_completes_no_event_in_time_times_out(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    # One byte every 20 ms never trips httpx's per-read timeout (500 ms); only
    # the per-event deadline catches it. Waited out, the answer would be whole.
    text, error = await collect_until_error(make_engine(client, upstream.url("trickle")))

    assert text == ""
    assert error.code == "upstream_timeout"
    assert await wait_disconnected(upstream.last())


# --- cancellation ---------------------------------------------------------------------


async def test_cancelling_the_consumer_closes_the_upstream_connection(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    engine = make_engine(client, upstream.url("slow"))
    received: list[str] = []
    three = asyncio.Event()

    async def consume() -> None:
        async for delta in engine.stream(REQUEST):
            received.append(delta.text)
            if len(received) == 3:
                three.set()

    task = asyncio.create_task(consume())
    await three.wait()
    record = upstream.last()
    assert not record.disconnected.is_set()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await wait_disconnected(record)
    assert received[:3] == ["t0 ", "t1 ", "t2 "]


async def test_closing_the_generator_closes_the_upstream_connection(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    engine = make_engine(client, upstream.url("slow"))
    stream = engine.stream(REQUEST)
    first = await anext(stream)
    assert first.text == "t0 "

    await stream.aclose()

    assert await wait_disconnected(upstream.last())


# --- models and configuration ---------------------------------------------------------


async def test_models_default_and_pinned(client: httpx.AsyncClient) -> None:
    url = "http://127.0.0.1:9/v1"
    assert make_engine(client, url, model=None).models == (DEFAULT_MODEL,)
    assert make_engine(client, url, model="pinned").models == ("pinned",)
    assert make_engine(client, url).name == "openai"


async def test_refresh_models_adopts_the_upstream_list_unless_pinned(
    upstream: Upstream, client: httpx.AsyncClient
) -> None:
    free = make_engine(client, upstream.url("ok"), model=None, api_key=API_KEY)
    assert await free.fetch_models() == ("m-one", "m-two")
    assert await free.refresh_models() == ("m-one", "m-two")
    assert free.models == ("m-one", "m-two")
    assert upstream.last().headers["authorization"] == f"Bearer {API_KEY}"

    pinned = make_engine(client, upstream.url("ok"), model="pinned")
    assert await pinned.refresh_models() == ("pinned",)


async def test_fetch_models_from_unreachable_upstream(client: httpx.AsyncClient) -> None:
    engine = make_engine(client, f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(UpstreamError) as info:
        await engine.fetch_models()
    assert info.value.code == "upstream_unreachable"


def test_engine_requires_an_upstream_url() -> None:
    with pytest.raises(ValueError, match="SSECHAT_UPSTREAM_URL"):
        OpenAIUpstreamEngine(httpx.AsyncClient(), base_url="")


# --- end to end: a second ssechat backend as the upstream -----------------------------


@pytest.fixture(scope="module")
def ssechat_upstream() -> Iterator[str]:
    env = {
        "SSECHAT_SIM_TOKENS_PER_S": "0",
        "SSECHAT_API_KEYS": "",
        "SSECHAT_HUB": "memory",
        "SSECHAT_LOG_LEVEL": "warning",
    }
    with run_backend_process(env, ["--engine", "simulated"]) as base_url:
        yield base_url


async def test_relayed_stream_equals_the_upstream_backends_non_stream_answer(
    ssechat_upstream: str, client: httpx.AsyncClient
) -> None:
    request = dataclasses.replace(REQUEST, model=SIMULATED_MODEL, max_tokens=60, stop=())
    engine = make_engine(client, f"{ssechat_upstream}/v1", model=SIMULATED_MODEL)
    deltas = [delta async for delta in engine.stream(request)]

    reply = await client.post(
        f"{ssechat_upstream}/v1/chat/completions",
        json={
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
            "stream": False,
        },
    )
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    text = "".join(delta.text for delta in deltas)
    assert text  # a relay of nothing would trivially match nothing
    assert text == answer["choices"][0]["message"]["content"]
    assert deltas[-1].finish_reason == answer["choices"][0]["finish_reason"]
    usage = answer["usage"]
    assert deltas[-1].usage == Usage(usage["prompt_tokens"], usage["completion_tokens"])


async def test_upstream_backend_rejection_becomes_an_upstream_error(
    ssechat_upstream: str, client: httpx.AsyncClient
) -> None:
    engine = make_engine(client, f"{ssechat_upstream}/v1", model="no-such-model")
    request = dataclasses.replace(REQUEST, model="no-such-model")

    with pytest.raises(UpstreamError) as info:
        await anext(engine.stream(request))

    assert info.value.code == "upstream_not_found"
    assert info.value.status == 404
    assert "no-such-model" in info.value.message

"""The Chat Completions renderer: deltas in, OpenAI's chunk and completion shapes out.

Deltas are given as a list (the renderer's input), so each shape is pinned
exactly, including the bytes of templated chunks: a chunk built from a
template must be the compact JSON of the same object built as a dict.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import pytest

from backend.config import ReasoningField
from backend.engines.base import TokenDelta, ToolCallDelta, Usage
from backend.generation.chat import ChatCompletionGeneration, complete
from backend.generation.payload import dumps
from backend.hub.base import Fragment, Produced, expand
from backend.sse import DONE

HEAD = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "model": "m",
    "system_fingerprint": None,
}
LOGPROBS = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}]}


async def feed(deltas: Sequence[TokenDelta]) -> AsyncGenerator[TokenDelta, None]:
    for delta in deltas:
        yield delta


async def render(
    deltas: Sequence[TokenDelta],
    *,
    reasoning_field: ReasoningField = "reasoning_content",
    include_usage: bool = True,
) -> tuple[list[Produced], list[str]]:
    """What the generation yields, and each payload expanded as a reader gets it."""
    generation = ChatCompletionGeneration(
        deltas=feed(deltas),
        model="m",
        completion_id="chatcmpl-1",
        include_usage=include_usage,
        reasoning_field=reasoning_field,
    )
    produced = [item async for item in generation.events()]
    payloads = [expand(generation.templates, item)[1] for item in produced]
    return produced, payloads


def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> str:
    """The compact JSON of a chunk with one choice (``created`` as the renderer set it)."""
    choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
    return dumps({**HEAD, "choices": [choice]})


def normalized(payload: str) -> str:
    """The payload with ``created`` taken out (the one field a test cannot know)."""
    if payload == DONE:
        return payload
    value = json.loads(payload)
    assert isinstance(value.pop("created"), int)
    return dumps(value)


async def test_plain_content_is_template_zero_and_unchanged() -> None:
    produced, payloads = await render(
        [
            TokenDelta("Hello"),
            TokenDelta(" wörld 🚀"),
            TokenDelta(finish_reason="stop", usage=Usage(3, 2)),
        ],
        include_usage=False,
    )
    assert produced[1] == Fragment(0, '"Hello"')
    assert produced[2] == Fragment(0, '" wörld 🚀"')
    expected = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hello"}),
        chunk({"content": " wörld 🚀"}),
        chunk({}, "stop"),
        DONE,
    ]
    assert [normalized(payload) for payload in payloads] == expected


@pytest.mark.parametrize(
    ("setting", "keys", "templated"),
    [
        ("reasoning_content", ["reasoning_content"], True),
        ("reasoning", ["reasoning"], True),
        ("both", ["reasoning_content", "reasoning"], False),
    ],
)
async def test_reasoning_goes_out_under_the_chosen_field(
    setting: ReasoningField, keys: list[str], templated: bool
) -> None:
    produced, payloads = await render(
        [
            TokenDelta(reasoning="Think"),
            TokenDelta(reasoning=" more"),
            TokenDelta("Done", finish_reason="stop"),
        ],
        reasoning_field=setting,
    )
    assert normalized(payloads[1]) == chunk(dict.fromkeys(keys, "Think"))
    assert normalized(payloads[2]) == chunk(dict.fromkeys(keys, " more"))
    assert normalized(payloads[3]) == chunk({"content": "Done"})
    assert isinstance(produced[2], Fragment) is templated


async def test_tool_calls_in_openai_shape() -> None:
    deltas = [
        TokenDelta(
            tool_calls=(ToolCallDelta(0, id="call_a", name="get_weather", type="function"),)
        ),
        TokenDelta(tool_calls=(ToolCallDelta(0, arguments='{"city":'),)),
        TokenDelta(tool_calls=(ToolCallDelta(0, arguments='"Zürich"}'),)),
        TokenDelta(tool_calls=(ToolCallDelta(1, id="call_b", name="get_time"),)),
        TokenDelta(tool_calls=(ToolCallDelta(1, arguments="{}"),)),
        TokenDelta(finish_reason="tool_calls", usage=Usage(9, 5)),
    ]
    produced, payloads = await render(deltas)
    first = {"index": 0, "id": "call_a", "type": "function"}
    expected = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"tool_calls": [{**first, "function": {"name": "get_weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Zürich"}'}}]}),
        chunk(
            {
                "tool_calls": [
                    {
                        "index": 1,
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": ""},
                    }
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}),
        chunk({}, "tool_calls"),
    ]
    assert [normalized(payload) for payload in payloads[:7]] == expected
    # argument pieces are template fragments, one template per call
    assert isinstance(produced[2], Fragment)
    assert isinstance(produced[3], Fragment)
    assert isinstance(produced[5], Fragment)
    assert produced[2].template == produced[3].template != produced[5].template
    usage = json.loads(payloads[7])["usage"]
    assert usage == {"prompt_tokens": 9, "completion_tokens": 5, "total_tokens": 14}


async def test_refusal_logprobs_mixed_deltas_and_usage_details() -> None:
    deltas = [
        TokenDelta(refusal="No."),
        TokenDelta("Hi", logprobs=LOGPROBS),
        TokenDelta("a", reasoning="b", tool_calls=(ToolCallDelta(0, arguments="{"),)),
        TokenDelta(
            finish_reason="stop",
            usage=Usage(10, 7, reasoning_tokens=4, cached_tokens=8),
        ),
    ]
    _, payloads = await render(deltas)
    assert normalized(payloads[1]) == chunk({"refusal": "No."})
    assert normalized(payloads[2]) == chunk({"content": "Hi"}, logprobs=LOGPROBS)
    assert normalized(payloads[3]) == chunk(
        {
            "content": "a",
            "reasoning_content": "b",
            "tool_calls": [{"index": 0, "function": {"arguments": "{"}}],
        }
    )
    usage = json.loads(payloads[5])["usage"]
    assert usage == {
        "prompt_tokens": 10,
        "completion_tokens": 7,
        "total_tokens": 17,
        "completion_tokens_details": {"reasoning_tokens": 4},
        "prompt_tokens_details": {"cached_tokens": 8},
    }
    assert payloads[-1] == DONE


async def test_templated_chunks_are_byte_identical_to_dict_chunks() -> None:
    """The hub may store a fragment and a worker elsewhere expand it: the bytes must be
    exactly what building the chunk from a dict gives, key order included."""
    deltas = [
        TokenDelta('x\n"y"'),
        TokenDelta(reasoning="r\u2028"),
        TokenDelta(tool_calls=(ToolCallDelta(3, id="c", name="n"),)),
        TokenDelta(tool_calls=(ToolCallDelta(3, arguments='{"k":"\\u00e9"}'),)),
        TokenDelta(finish_reason="tool_calls"),
    ]
    produced, payloads = await render(deltas, include_usage=False)
    created = json.loads(payloads[0])["created"]
    head = {**HEAD, "created": created}
    head = {key: head[key] for key in ("id", "object", "created", "model", "system_fingerprint")}
    for item, payload in zip(produced, payloads, strict=True):
        if isinstance(item, Fragment):
            value = json.loads(payload)
            assert payload == dumps({**head, "choices": value["choices"]})


async def test_a_whole_completion_carries_every_kind() -> None:
    deltas = [
        TokenDelta(reasoning="Let me think."),
        TokenDelta(tool_calls=(ToolCallDelta(0, id="call_a", name="f", type="function"),)),
        TokenDelta(tool_calls=(ToolCallDelta(0, arguments='{"a":'),)),
        TokenDelta(tool_calls=(ToolCallDelta(0, arguments="1}"),)),
        TokenDelta(finish_reason="tool_calls", usage=Usage(5, 4, reasoning_tokens=1)),
    ]
    whole = await complete(feed(deltas), "m", "chatcmpl-1", "reasoning")
    choice = whole["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "reasoning": "Let me think.",
        "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}
        ],
    }
    assert whole["usage"]["completion_tokens_details"] == {"reasoning_tokens": 1}

    refused = await complete(
        feed([TokenDelta(refusal="No"), TokenDelta(refusal=" way.", finish_reason="stop")]),
        "m",
        "chatcmpl-2",
    )
    assert refused["choices"][0]["message"]["content"] is None
    assert refused["choices"][0]["message"]["refusal"] == "No way."

    scored = await complete(
        feed(
            [
                TokenDelta("Hi", logprobs=LOGPROBS),
                TokenDelta("!", logprobs=LOGPROBS, finish_reason="stop"),
            ]
        ),
        "m",
        "chatcmpl-3",
        "both",
    )
    assert scored["choices"][0]["message"]["content"] == "Hi!"
    assert scored["choices"][0]["logprobs"] == {"content": LOGPROBS["content"] * 2}
    assert "reasoning" not in scored["choices"][0]["message"]

"""Resume in the middle of reasoning or of a tool call, on both hubs.

The stream is the real renderer over the simulated reasoning model calling two
tools, so it holds every templated kind (reasoning, argument pieces of two
calls) and whole chunks (each call's first fragment). A reader that leaves
mid-reasoning and comes back on another worker mid-arguments must get the
very events a reader of the whole stream gets: same ids, same bytes.
"""

from __future__ import annotations

import json

from backend.engines.base import ChatMessage, GenerationRequest, ToolSpec
from backend.engines.simulated import REASONING_MODEL
from backend.hub.base import StreamEvent
from backend.sse import DONE
from tests.backend.hub.conftest import Hubs
from tests.backend.hub.helpers import Reader, assert_contiguous, generation, read_all

OBJECT = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
REQUEST = GenerationRequest(
    messages=(ChatMessage("user", "Use get_weather and get_time for Zürich."),),
    model=REASONING_MODEL,
    max_tokens=400,
    seed=3,
    tools=(ToolSpec("get_weather", None, OBJECT), ToolSpec("get_time", None, OBJECT)),
    reasoning_effort="low",
)


def kind(event: StreamEvent) -> str:
    if event.data == DONE:
        return "done"
    choices = json.loads(event.data)["choices"]
    if not choices:
        return "usage"
    delta = choices[0]["delta"]
    if "reasoning_content" in delta:
        return "reasoning"
    if "tool_calls" in delta:
        return "call" if "id" in delta["tool_calls"][0] else "arguments"
    if choices[0]["finish_reason"]:
        return "finish"
    return "role" if "role" in delta else "content"


def runs(events: list[StreamEvent]) -> list[str]:
    """The kinds in order, repeats folded: the shape of the stream."""
    folded: list[str] = []
    for event in events:
        if not folded or folded[-1] != kind(event):
            folded.append(kind(event))
    return folded


async def test_resume_mid_reasoning_then_mid_tool_call_on_another_worker(hubs: Hubs) -> None:
    hub = await hubs.make()
    peer = await hubs.peer(hub)
    await hub.start("s1", None, generation("s1", request=REQUEST, tokens_per_s=100))
    reader = Reader(await hub.subscribe("s1", 0, None))
    head = await reader.take(4)
    await reader.aclose()
    assert kind(head[-1]) == "reasoning"  # left in the middle of the reasoning

    reader = Reader(await peer.subscribe("s1", head[-1].seq, None))
    middle: list[StreamEvent] = []
    while not (middle and kind(middle[-1]) == "arguments"):
        middle += await reader.take(1)
    await reader.aclose()  # left in the middle of the first call's arguments

    tail = await read_all(peer, "s1", middle[-1].seq)
    whole = await read_all(hub, "s1")
    assert head + middle + tail == whole
    assert_contiguous(whole)
    shape = ["role", "reasoning", "call", "arguments", "call", "arguments", "finish", "done"]
    assert runs(whole) == shape


async def test_every_resume_point_replays_the_same_fragments(hubs: Hubs) -> None:
    hub = await hubs.make()
    await hub.start("s1", None, generation("s1", request=REQUEST))
    whole = await read_all(hub, "s1")
    assert {"reasoning", "call", "arguments"} <= {kind(event) for event in whole}
    peer = await hubs.peer(hub)
    for after in range(len(whole)):
        assert await read_all(peer, "s1", after) == whole[after:], after

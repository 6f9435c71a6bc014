"""An engine that yields a fixed list of deltas, plugged in with ``create_app(extra_engines=...)``.

It honours every request field (``check`` refuses nothing) and keeps the
requests it got, so dialect tests can drive each renderer through every
delta kind (reasoning, text, refusal, tool calls, stop sequences, usage)
and see what a request turned into.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence

from backend.engines.base import GenerationRequest, TokenDelta, ToolCallDelta, Usage


class ScriptedEngine:
    name = "scripted"

    def __init__(self, model: str, script: Sequence[TokenDelta], *, delay_s: float = 0.0) -> None:
        self._model = model
        self._script = tuple(script)
        self._delay_s = delay_s
        self.requests: list[GenerationRequest] = []

    @property
    def models(self) -> tuple[str, ...]:
        return (self._model,)

    def check(self, request: GenerationRequest) -> None:
        return None

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        self.requests.append(request)
        for delta in self._script:
            await asyncio.sleep(self._delay_s)
            yield delta

    async def aclose(self) -> None:
        return None


# Reasoning, then text (one emoji, one quote that needs escaping), then two
# tool calls whose fragments interleave, then the finish with usage.
EVERY_KIND: tuple[TokenDelta, ...] = (
    TokenDelta(reasoning="Let me "),
    TokenDelta(reasoning="think."),
    TokenDelta(text="Hello "),
    TokenDelta(text='🚀 "world"'),
    TokenDelta(tool_calls=(ToolCallDelta(0, id="call_a", name="get_weather", type="function"),)),
    TokenDelta(tool_calls=(ToolCallDelta(0, arguments='{"city":'),)),
    TokenDelta(tool_calls=(ToolCallDelta(1, id="call_b", name="get_time", arguments="{}"),)),
    TokenDelta(tool_calls=(ToolCallDelta(0, arguments='"Oslo"}'),)),
    TokenDelta(
        finish_reason="tool_calls",
        usage=Usage(prompt_tokens=7, completion_tokens=9, reasoning_tokens=3, cached_tokens=2),
    ),
)

REFUSAL: tuple[TokenDelta, ...] = (
    TokenDelta(text="I "),
    TokenDelta(refusal="cannot help with that."),
    TokenDelta(finish_reason="content_filter", usage=Usage(3, 4)),
)

STOPPED_BY_SEQUENCE: tuple[TokenDelta, ...] = (
    TokenDelta(text="one two"),
    TokenDelta(finish_reason="stop", usage=Usage(3, 2), stop_sequence="THREE"),
)

CUT_BY_LENGTH: tuple[TokenDelta, ...] = (
    TokenDelta(text="a b"),
    TokenDelta(text=" c"),
    TokenDelta(finish_reason="length", usage=Usage(3, 3)),
)


# Text with logprobs as an OpenAI upstream gives them (Chat Completions shape).
WITH_LOGPROBS: tuple[TokenDelta, ...] = (
    TokenDelta(
        text="Hi",
        logprobs={
            "content": [
                {
                    "token": "Hi",
                    "logprob": -0.25,
                    "bytes": [72, 105],
                    "top_logprobs": [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105]}],
                }
            ]
        },
    ),
    TokenDelta(finish_reason="stop", usage=Usage(2, 1)),
)


def scripted_engines() -> list[ScriptedEngine]:
    """One engine per script, named after it (``scripted-every-kind`` …)."""
    return [
        ScriptedEngine("scripted-every-kind", EVERY_KIND),
        ScriptedEngine("scripted-refusal", REFUSAL),
        ScriptedEngine("scripted-stop-sequence", STOPPED_BY_SEQUENCE),
        ScriptedEngine("scripted-length", CUT_BY_LENGTH),
        ScriptedEngine("scripted-logprobs", WITH_LOGPROBS),
    ]

"""The SSE encoder's cost per event, unnamed (Chat Completions) against named
(``event:`` lines, as the Responses and Messages dialects write them).

Run: ``python -m bench.encoder``. Prints nanoseconds per event for batches of
three events of a realistic chunk payload (the minimum of five repeats).
"""

from __future__ import annotations

import sys
import timeit

from backend.sse import encode_batch

_PAYLOAD = (
    '{"id":"chatcmpl-0123456789abcdef0123456789abcdef","object":"chat.completion.chunk",'
    '"created":1700000000,"model":"ssechat-simulated","system_fingerprint":null,'
    '"choices":[{"index":0,"delta":{"content":" token"},"logprobs":null,"finish_reason":null}]}'
)
_BATCH = 3
_NUMBER = 100_000


def ns_per_event(name: str) -> float:
    events = [(seq, name, _PAYLOAD) for seq in range(1, _BATCH + 1)]
    best = min(timeit.repeat(lambda: encode_batch(events), number=_NUMBER, repeat=5))
    return best / _NUMBER / _BATCH * 1e9


def main() -> None:
    unnamed = ns_per_event("")
    named = ns_per_event("response.output_text.delta")
    sys.stdout.write(
        f"unnamed: {unnamed:.0f} ns/event\nnamed:   {named:.0f} ns/event ({named / unnamed:.2f}x)\n"
    )


if __name__ == "__main__":
    main()

"""The events every baseline sends: the data lines of one response of ours.

``bench.throughput`` captures one of our responses and writes its data
payloads (JSON list of strings, ``[DONE]`` last) to the file named by
``BENCH_PAYLOAD_FILE``; the baselines replay them, so payload shape, size
and count are the same as ours and only the streaming path differs.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

# Our first event carries ``retry:``; the baselines send it too, for the same bytes.
RETRY_MS = 1000
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Payload:
    data: tuple[str, ...]

    def sse_events(self) -> tuple[bytes, ...]:
        """The events pre-encoded as SSE, one ``bytes`` per event."""
        events = []
        for seq, data in enumerate(self.data, start=1):
            retry = f"retry: {RETRY_MS}\n" if seq == 1 else ""
            events.append(f"id: {seq}\n{retry}data: {data}\n\n".encode())
        return tuple(events)


def load_payload() -> Payload:
    path = os.environ.get("BENCH_PAYLOAD_FILE")
    if not path:
        raise RuntimeError("BENCH_PAYLOAD_FILE is not set (bench.throughput sets it)")
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise RuntimeError(f"{path}: expected a JSON list of strings")
    return Payload(tuple(data))

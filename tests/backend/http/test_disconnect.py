"""A non-streaming completion stops, and frees its slot, when its client leaves.

Before: three ``stream: false`` requests closed after a second kept their
generations running and all three concurrency slots held (new requests 429
for the whole generation), and SIGTERM then waited the full timeout and
logged a ``CancelledError`` traceback.
"""

from __future__ import annotations

import json

import httpx

from tests.backend.http.raw import connect, metric, wait_until
from tests.servers import backend_process

CHAT = "/v1/chat/completions"
CAP = 3


def post_raw(body: dict[str, object]) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode()
    return head + payload


def test_abandoned_non_stream_requests_free_their_slots_and_shutdown_is_clean() -> None:
    env = {
        "SSECHAT_ENGINE": "simulated",
        "SSECHAT_SIM_TOKENS_PER_S": "5",
        "SSECHAT_SIM_FILL_MAX_TOKENS": "true",  # 1,000 tokens at 5/s: minutes
        "SSECHAT_MAX_CONCURRENT_STREAMS_PER_KEY": str(CAP),
    }
    long = {"messages": [{"role": "user", "content": "go on"}], "max_tokens": 1000}
    with backend_process(env) as server:
        clients = [connect(server.url) for _ in range(CAP)]
        for sock in clients:
            sock.sendall(post_raw(long))
        slots = "ssechat_stream_slots_held"
        wait_until(lambda: metric(server.url, slots) == CAP, 10, "every slot taken")
        refused = httpx.post(f"{server.url}{CHAT}", json={**long, "max_tokens": 1})
        assert refused.status_code == 429  # the cap is real
        for sock in clients:
            sock.close()
        wait_until(lambda: metric(server.url, slots) == 0, 5, "the slots freed")
        quick = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
        assert httpx.post(f"{server.url}{CHAT}", json=quick, timeout=10).status_code == 200
        status = server.terminate(timeout_s=10)
        log = server.log()
    assert status == 0, log
    assert "Traceback" not in log, log
    assert "CancelledError" not in log, log

"""The server config every server of ours uses: who may set the client address.

uvicorn believes ``X-Forwarded-For`` from 127.0.0.1 by default, so any local
client could pick its own address and walk past a per-address rate limit.
Ours believes nobody unless ``SSECHAT_FORWARDED_ALLOW_IPS`` says so.
"""

from __future__ import annotations

import httpx
import pytest

from tests.servers import backend_process

CHAT = "/v1/chat/completions"
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}
LIMIT = 5


def statuses(base_url: str, count: int) -> list[int]:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        return [
            client.post(CHAT, json=BODY, headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(count)
        ]


def limited_env(**extra: str) -> dict[str, str]:
    return {
        "SSECHAT_ENGINE": "simulated",
        "SSECHAT_SIM_TOKENS_PER_S": "0",
        "SSECHAT_RATE_LIMIT_PER_MIN": str(LIMIT),
        **extra,
    }


def test_a_made_up_forwarded_for_does_not_get_past_the_rate_limit() -> None:
    with backend_process(limited_env()) as server:
        answers = statuses(server.url, 12)
    assert answers == [200] * LIMIT + [429] * (12 - LIMIT)


@pytest.mark.parametrize("trusted", ["127.0.0.1", "127.0.0.0/8", "*"])
def test_a_trusted_proxy_sets_the_client_address(trusted: str) -> None:
    args = ["--forwarded-allow-ips", trusted]
    with backend_process(limited_env(), args) as server:
        answers = statuses(server.url, 12)
    assert answers == [200] * 12  # twelve clients, one request each


def test_an_untrusted_peer_is_limited_even_when_a_proxy_is_configured() -> None:
    with backend_process(limited_env(SSECHAT_FORWARDED_ALLOW_IPS="10.0.0.0/8")) as server:
        answers = statuses(server.url, 8)
    assert answers == [200] * LIMIT + [429] * (8 - LIMIT)

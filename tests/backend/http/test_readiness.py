"""``/readyz``: 200 when the worker can serve, 503 with the reason when its hub cannot."""

from __future__ import annotations

import httpx

from tests.backend.http.raw import wait_until
from tests.redis_server import run_redis_server
from tests.servers import backend_process


def test_memory_hub_is_ready_and_liveness_differs_from_readiness() -> None:
    with backend_process({"SSECHAT_ENGINE": "simulated"}) as server:
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ok", "hub": "memory"}


def test_readyz_is_503_while_redis_is_down_and_200_when_it_is_back() -> None:
    with run_redis_server() as redis:
        env = {
            "SSECHAT_ENGINE": "simulated",
            "SSECHAT_HUB": "redis",
            "SSECHAT_REDIS_URL": redis.url,
        }
        with backend_process(env) as server:
            assert httpx.get(f"{server.url}/readyz").status_code == 200
            redis.stop()
            down = httpx.get(f"{server.url}/readyz", timeout=10)
            assert down.status_code == 503
            assert down.headers["retry-after"] == "1"
            assert down.json()["status"] == "unavailable"
            assert "Redis" in down.json()["reason"]
            assert httpx.get(f"{server.url}/healthz").status_code == 200  # still alive
            redis.start()
            wait_until(
                lambda: httpx.get(f"{server.url}/readyz").status_code == 200, 10, "ready again"
            )

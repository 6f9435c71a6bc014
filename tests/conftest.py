"""Fixtures shared across the test tree."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.llama_server import run_llama_server
from tests.redis_server import RedisServer, run_redis_server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session; tests that stop it start their own."""
    with run_redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="session")
def llama_upstream() -> Iterator[str]:
    """llama-cpp-python's own server on the local GGUF for the session: its API base."""
    pytest.importorskip("llama_cpp.server", reason="the llama-cpp-python[server] extra")
    with run_llama_server() as base_url:
        yield base_url

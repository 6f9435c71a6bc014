"""Fixtures of the modules that run one dialect server (their own ``server`` fixture):
its URL and engines, and clients of it (raw HTTP and each dialect's official SDK)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from anthropic import Anthropic
from openai import OpenAI

from backend.engines.base import Engine


@pytest.fixture(scope="module")
def url(server: tuple[str, list[Engine]]) -> str:
    return server[0]


@pytest.fixture(scope="module")
def engines(server: tuple[str, list[Engine]]) -> list[Engine]:
    return server[1]


@pytest.fixture(scope="module")
def openai_sdk(url: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def anthropic_sdk(url: str) -> Iterator[Anthropic]:
    with Anthropic(base_url=url, api_key="unused", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def http(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=30) as client:
        yield client

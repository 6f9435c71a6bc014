"""One loaded model for the llama engine's model tests (about a second to load)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from backend.engines.llama import LlamaEngine, load_llama_engine


@pytest.fixture(scope="package")
def engine() -> Iterator[LlamaEngine]:
    pytest.importorskip("llama_cpp")
    loaded = load_llama_engine(n_ctx=2048)
    yield loaded
    asyncio.run(loaded.aclose())

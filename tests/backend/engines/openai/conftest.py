"""One scripted upstream (``FaultyUpstream`` under uvicorn) for every ``openai`` engine test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.backend.engines.openai.helpers import Upstream
from tests.backend.engines.upstream_faults import FaultyUpstream
from tests.servers import serve_app


@pytest.fixture(scope="package")
def upstream_server() -> Iterator[Upstream]:
    app = FaultyUpstream(trickle_delay_s=0.02)
    with serve_app(app, lifespan="off") as base_url:
        yield Upstream(app, base_url)


@pytest.fixture
def upstream(upstream_server: Upstream) -> Upstream:
    upstream_server.app.clear()
    return upstream_server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http

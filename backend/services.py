"""The resources one app instance runs on, built in ``lifespan`` and passed to routes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
from fastapi import Request

from backend.config import Settings
from backend.engines.registry import EngineSet
from backend.hub.base import StreamHub
from backend.metrics import Metrics


@dataclass
class Services:
    settings: Settings
    engines: EngineSet
    hub: StreamHub
    metrics: Metrics
    http_client: httpx.AsyncClient
    started_at: float = field(default_factory=time.time)


async def get_services(request: Request) -> Services:
    # async: a plain ``def`` dependency would cost a thread-pool hop per request.
    services: Services = request.app.state.services
    return services

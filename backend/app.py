"""The app factory: ``create_app(settings)`` builds a FastAPI app; resources live in lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from backend.config import Settings, get_settings
from backend.engines.base import Engine
from backend.engines.registry import build_engines
from backend.errors import install_error_handlers
from backend.hub.factory import build_hub
from backend.limits import BodySizeLimit
from backend.metrics import Metrics
from backend.routes import chat, system
from backend.services import Services

logger = logging.getLogger(__name__)

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def create_app(
    settings: Settings | None = None, *, extra_engines: Sequence[Engine] = ()
) -> FastAPI:
    """Build the API app. Nothing is loaded until the app's lifespan starts.

    ``extra_engines`` are served next to the configured ones (their models
    join /v1/models): a way to plug in an engine without a setting for it.
    """
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.api_key_list and settings.host not in _LOOPBACK:
            logger.warning(
                "API is open (no SSECHAT_API_KEYS) and bound to %s: anyone who can reach it "
                "may use it",
                settings.host,
            )
        http_client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=settings.upstream_connect_timeout_s,
                read=settings.upstream_read_timeout_s,
                write=settings.upstream_read_timeout_s,
                pool=settings.upstream_connect_timeout_s,
            ),
        )
        engines = await build_engines(settings, http_client)
        for engine in extra_engines:
            for model_id in engine.models:
                engines.by_model.setdefault(model_id, engine)
        hub = await build_hub(
            settings, on_end=lambda reason: metrics.cancellations.inc(label_value=reason)
        )
        app.state.services = Services(
            settings=settings, engines=engines, hub=hub, metrics=metrics, http_client=http_client
        )
        metrics.add_gauge(
            "ssechat_info",
            "Engine, model and hub of this worker (value is always 1).",
            lambda: 1.0,
            {"engine": engines.primary.name, "model": engines.default_model, "hub": hub.kind},
        )
        logger.info(
            "ssechat ready: engine=%s model=%s hub=%s",
            engines.primary.name,
            engines.default_model,
            hub.kind,
        )
        try:
            yield
        finally:
            await hub.aclose()
            await engines.aclose()
            await http_client.aclose()

    app = FastAPI(
        title="ssechat",
        summary="OpenAI-compatible chat completions streamed over Server-Sent Events.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(chat.router)
    app.include_router(system.router)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=False,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
            expose_headers=["X-Stream-Id"],
        )
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    return app


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used by ``python -m backend --workers N``)."""
    return create_app(get_settings())

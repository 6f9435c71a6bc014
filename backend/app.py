"""The app factory: ``create_app(settings)`` builds a FastAPI app; resources live in lifespan."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from backend.config import Settings, get_settings
from backend.engines.base import Engine
from backend.engines.registry import build_engines
from backend.errors import install_error_handlers
from backend.http.handoff import StreamHandoff
from backend.http.limits import BodySizeLimit
from backend.hub.base import StreamHub
from backend.hub.factory import build_hub
from backend.limits import build_limits
from backend.limits.base import Limits
from backend.metrics import Metrics
from backend.routes import chat, messages, responses, system
from backend.security import APIKeyAuth
from backend.services import Services
from backend.store import build_store

logger = logging.getLogger(__name__)


class SSEChatApp(FastAPI):
    """FastAPI with ``StreamHandoff`` outermost: a started SSE response streams the
    rest of its body from there, after every other layer has returned."""

    def build_middleware_stack(self) -> ASGIApp:
        return StreamHandoff(super().build_middleware_stack())


def _is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost; any other name or address may be reachable."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# Key of the lifespan state entry holding ``begin_shutdown`` (an async callable):
# the server (backend/serving.py) calls it on SIGTERM, before it waits for open
# connections, because uvicorn runs the lifespan shutdown only after they close.
SHUTDOWN_HOOK = "ssechat.begin_shutdown"

ShutdownHook = Callable[[], Awaitable[None]]


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
    async def lifespan(app: FastAPI) -> AsyncIterator[Mapping[str, Any]]:
        if not settings.api_key_list and not _is_loopback(settings.host):
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
        limits = await build_limits(
            per_minute=settings.rate_limit_per_min,
            max_concurrent=settings.max_concurrent_streams_per_key,
            redis_url=settings.redis_url if settings.hub == "redis" else None,
            slot_ttl_s=settings.stream_slot_ttl_s,
        )
        app.state.limits = limits
        app.state.response_store = await build_store(
            redis_url=settings.redis_url if settings.hub == "redis" else None,
            ttl_s=settings.response_ttl_s or settings.stream_ttl_s,
            max_records=settings.max_streams,
            max_bytes=settings.max_buffered_bytes,
        )
        _add_hub_gauges(metrics, hub, limits)
        metrics.add_gauge(
            "ssechat_info",
            "Engine, model and hub of this deployment (value is always 1).",
            lambda: 1.0,
            {"engine": engines.primary.name, "model": engines.default_model, "hub": hub.kind},
            mode="max",
        )
        if settings.metrics_dir:  # several workers: /metrics adds up every worker's figures
            metrics.share(Path(settings.metrics_dir))
        logger.info(
            "ssechat ready: engine=%s model=%s hub=%s",
            engines.primary.name,
            engines.default_model,
            hub.kind,
        )

        async def begin_shutdown() -> None:
            """End every live stream now (final chunk + [DONE], reason "shutdown") and
            refuse new ones with 503, so connections can close before the deadline."""
            if app.state.draining:
                return
            app.state.draining = True
            logger.info("shutting down: ending every live stream")
            await hub.drain()

        try:
            yield {SHUTDOWN_HOOK: begin_shutdown}
        finally:
            app.state.draining = True
            await hub.aclose()
            await app.state.response_store.aclose()
            await metrics.aclose()
            await limits.aclose()
            await engines.aclose()
            await http_client.aclose()

    app = SSEChatApp(
        title="ssechat",
        summary="OpenAI Chat Completions, OpenAI Responses and Anthropic Messages, streamed over "
        "Server-Sent Events.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.draining = False
    _document_400_not_422(app)
    install_error_handlers(app)
    app.include_router(chat.router)
    app.include_router(responses.router)
    app.include_router(messages.router)
    app.include_router(system.router)
    # Outermost last: CORS → API keys → body size → routes. CORS answers preflights
    # (sent without credentials) and decorates 401/413 so a page can read them.
    # Header bytes, read timeouts and the connection cap come earlier still, in
    # the server's protocol (backend/http/protocol.py).
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(APIKeyAuth, api_keys=settings.api_key_list, open_docs=settings.open_docs)
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_credentials=False,
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "X-API-Key",
                "Content-Type",
                "Last-Event-ID",
                "anthropic-version",
                "anthropic-beta",
            ],
            expose_headers=["X-Stream-Id"],
        )
    return app


def _document_400_not_422(app: FastAPI) -> None:
    """FastAPI documents its validation errors as 422; we answer them 400 with an
    OpenAI-style body (backend/errors.py), so say so in /openapi.json."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                responses = operation.get("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault("400", {"description": "Invalid request"})
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_hub_gauges(metrics: Metrics, hub: StreamHub, limits: Limits) -> None:
    """Gauges the soak benchmark and the disconnect-storm tests watch (streams, slots)."""
    metrics.add_gauge(
        "ssechat_hub_live_streams", "Generations running.", lambda: float(hub.live_streams)
    )
    # ``max`` across workers: the Redis hub reports the whole deployment's store in each.
    metrics.add_gauge(
        "ssechat_hub_stored_streams",
        "Streams kept for resume.",
        lambda: float(hub.stored_streams),
        mode="max",
    )
    metrics.add_gauge(
        "ssechat_hub_buffered_bytes",
        "Bytes of events kept for resume.",
        lambda: float(hub.buffered_bytes),
        mode="max",
    )
    metrics.add_gauge(
        "ssechat_stream_slots_held",
        "Concurrency slots held by running generations.",
        lambda: float(limits.held_slots),
    )


def app_from_environment() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used by ``python -m backend --workers N``)."""
    return create_app(get_settings())

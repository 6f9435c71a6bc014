"""``/v1/models``, ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from backend.security import authenticate
from backend.services import Services, get_services

router = APIRouter()
ServicesDep = Annotated[Services, Depends(get_services)]


_NEEDS_KEY: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or wrong API key"}}


@router.get("/v1/models", tags=["models"], responses=_NEEDS_KEY)
async def list_models(request: Request, services: ServicesDep) -> dict[str, Any]:
    authenticate(request, services.settings.api_key_list)
    created = int(services.started_at)
    return {
        "object": "list",
        "data": [
            {
                "id": model_id,
                "object": "model",
                "created": created,
                "owned_by": f"ssechat-{engine.name}",
            }
            for model_id, engine in services.engines.by_model.items()
        ],
    }


@router.get("/healthz", tags=["system"])
async def health(services: ServicesDep) -> dict[str, Any]:
    engines = services.engines
    return {
        "status": "ok",
        "engine": engines.primary.name,
        "model": engines.default_model,
        "models": engines.model_ids(),
        "hub": services.hub.kind,
        "note": engines.note,
    }


@router.get(
    "/readyz",
    tags=["system"],
    responses={503: {"description": "Not ready: shutting down, or the hub is unreachable"}},
)
async def ready(request: Request, services: ServicesDep) -> JSONResponse:
    """200 when this worker can serve (engine loaded, hub reachable); 503 with the reason.

    The engine is loaded before the app accepts requests, so reaching this
    route says so; the hub is probed each time.
    """
    if request.app.state.draining:
        reason: str | None = "Shutting down."
    else:
        reason = await services.hub.readiness()
    body = {"status": "ok" if reason is None else "unavailable", "hub": services.hub.kind}
    if reason is not None:
        body["reason"] = reason
        return JSONResponse(body, status_code=503, headers={"Retry-After": "1"})
    return JSONResponse(body)


@router.get("/metrics", tags=["system"], response_class=PlainTextResponse, responses=_NEEDS_KEY)
async def metrics(services: ServicesDep) -> PlainTextResponse:
    """Prometheus text format; with several workers, the whole deployment's figures."""
    if services.hub.kind == "redis":
        # One PING per scrape: the Redis round trip as this worker sees it now.
        started = time.perf_counter()
        if await services.hub.readiness() is None:
            services.metrics.observe_redis_round_trip(time.perf_counter() - started, "ping")
    return PlainTextResponse(
        services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )

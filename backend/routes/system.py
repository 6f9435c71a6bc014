"""``/v1/models``, ``/healthz``, ``/metrics``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse

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


@router.get("/metrics", tags=["system"], response_class=PlainTextResponse, responses=_NEEDS_KEY)
async def metrics(services: ServicesDep) -> PlainTextResponse:
    return PlainTextResponse(
        services.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )

"""Chooses and builds the engines named by the settings; maps model ids to engines.

The only module that reads ``Settings`` for engines: each engine is built
from explicit arguments.

The simulated engine is always served next to the primary one: it costs
nothing, and it gives the UI's Compare tab and the tests a second model.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import httpx

from backend.config import Settings
from backend.engines.base import Engine, ResponsesUpstream
from backend.engines.simulated import DEFAULT_MODEL, SimulatedEngine

if TYPE_CHECKING:
    from backend.engines.openai import OpenAIUpstreamEngine

logger = logging.getLogger(__name__)


class UnknownModel(LookupError):
    pass


@dataclass
class EngineSet:
    primary: Engine
    by_model: dict[str, Engine] = field(default_factory=dict)
    note: str = ""
    # Models whose engine may relay /v1/responses natively (the ResponsesUpstream capability).
    native_responses: dict[str, ResponsesUpstream] = field(default_factory=dict)

    @property
    def default_model(self) -> str:
        return self.primary.models[0]

    def model_ids(self) -> list[str]:
        return list(self.by_model)

    def resolve(self, model: str | None) -> tuple[str, Engine]:
        model_id = model or self.default_model
        engine = self.by_model.get(model_id)
        if engine is None:
            raise UnknownModel(model_id)
        return model_id, engine

    def responses_upstream(self, model_id: str) -> ResponsesUpstream | None:
        """The engine that may relay ``/v1/responses`` natively for this model, if any."""
        return self.native_responses.get(model_id)

    async def aclose(self) -> None:
        for engine in {id(engine): engine for engine in self.by_model.values()}.values():
            await engine.aclose()


async def _load_llama(settings: Settings) -> Engine:
    from backend.engines.llama import load_llama_engine  # optional extra: import lazily

    return await asyncio.to_thread(
        load_llama_engine,
        model_path=settings.llama_model_path,
        n_ctx=settings.llama_n_ctx,
        threads=settings.llama_threads,
        model_id=settings.model,
    )


async def _openai(settings: Settings, http_client: httpx.AsyncClient) -> OpenAIUpstreamEngine:
    from backend.engines.openai import OpenAIUpstreamEngine

    if not settings.upstream_url:
        raise ValueError("SSECHAT_ENGINE=openai needs SSECHAT_UPSTREAM_URL")
    engine = OpenAIUpstreamEngine(
        http_client,
        base_url=settings.upstream_url,
        api_key=settings.upstream_api_key,
        include_usage=settings.upstream_stream_options,
        connect_timeout_s=settings.upstream_connect_timeout_s,
        read_timeout_s=settings.upstream_read_timeout_s,
        model=settings.model,
        responses=settings.upstream_responses,
    )
    try:
        # Serve the upstream's own model ids unless SSECHAT_MODEL pins one.
        await engine.refresh_models()
    except Exception as error:  # best effort: the upstream may come up after us
        logger.warning(
            "could not list the upstream's models (%s); serving %s", error, engine.models
        )
    return engine


async def build_engines(settings: Settings, http_client: httpx.AsyncClient) -> EngineSet:
    simulated_model = settings.model if settings.engine == "simulated" and settings.model else None
    simulated = SimulatedEngine(
        tokens_per_s=settings.sim_tokens_per_s,
        model=simulated_model or DEFAULT_MODEL,
        fill_max_tokens=settings.sim_fill_max_tokens,
    )
    note = ""
    primary: Engine
    native_responses: ResponsesUpstream | None = None
    if settings.engine == "simulated":
        primary = simulated
    elif settings.engine == "llama":
        primary = await _load_llama(settings)
    elif settings.engine == "openai":
        primary = upstream = await _openai(settings, http_client)
        if settings.upstream_responses != "off":
            native_responses = upstream
    else:  # auto
        try:
            primary = await _load_llama(settings)
        except Exception as error:
            note = f"auto: local model unavailable ({error}); using the simulated engine"
            logger.warning("%s", note)
            primary = simulated
    engines = EngineSet(primary=primary, note=note)
    for engine in (primary, simulated):
        for model_id in engine.models:
            engines.by_model.setdefault(model_id, engine)
    if native_responses is not None:
        for model_id in primary.models:
            if engines.by_model[model_id] is primary:
                engines.native_responses[model_id] = native_responses
    logger.info(
        "engine %s live, model %s (also serving: %s)",
        primary.name,
        engines.default_model,
        ", ".join(engines.model_ids()[1:]) or "nothing else",
    )
    return engines

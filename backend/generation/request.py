"""From a dialect's parsed request to a checked ``GenerationRequest`` and its engine.

Every dialect route (Chat Completions, Responses, Messages) converts its own
request shape into ``ChatMessage``s and sampling fields, then calls
``build_request``: the limits, the model lookup and the engine's refusal of
fields it cannot honour live here once, and each error names the field the
way the caller's dialect spells it (``params``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.config import Settings
from backend.engines.base import ChatMessage, Engine, EngineError, GenerationRequest
from backend.engines.registry import EngineSet, UnknownModel
from backend.errors import APIError
from backend.generation.checks import check_request
from backend.generation.params import CHAT_PARAMS, ParamNames

__all__ = ["CHAT_PARAMS", "ParamNames", "RequestLimits", "build_request", "with_fields"]

# Longest stop string accepted: long enough for any real delimiter, short
# enough that matching it per token stays cheap.
MAX_STOP_CHARS = 256
MAX_STOP_SEQUENCES = 4


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_messages: int
    max_message_chars: int
    max_tokens_limit: int
    default_max_tokens: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        return cls(
            max_messages=settings.max_messages,
            max_message_chars=settings.max_message_chars,
            max_tokens_limit=settings.max_tokens_limit,
            default_max_tokens=settings.default_max_tokens,
        )


def build_request(
    *,
    messages: Sequence[ChatMessage],
    model: str | None,
    engines: EngineSet,
    limits: RequestLimits,
    max_tokens: int | None,
    stop: Sequence[str] = (),
    params: ParamNames = CHAT_PARAMS,
    **fields: Any,
) -> tuple[GenerationRequest, Engine]:
    """Validate against the limits and the whole-request checks
    (``backend.generation.checks``), resolve the model, and let the engine
    refuse what it cannot honour (400 ``unsupported_parameter`` naming the field).

    ``fields`` are further ``GenerationRequest`` fields (temperature, tools …).
    """
    if len(messages) > limits.max_messages:
        raise APIError(
            400,
            f"Too many messages: {len(messages)} (at most {limits.max_messages}).",
            code="too_many_messages",
            param=params.messages,
        )
    for index, message in enumerate(messages):
        if len(message.content) > limits.max_message_chars:
            raise APIError(
                400,
                f"{params.message.format(index=index)} is {len(message.content)} characters long "
                f"(at most {limits.max_message_chars}).",
                code="message_too_long",
                param=params.message_field(index, "content"),
            )
    tokens = max_tokens or limits.default_max_tokens
    if tokens > limits.max_tokens_limit:
        raise APIError(
            400,
            f"{params.max_tokens} is {tokens}; at most {limits.max_tokens_limit} is allowed.",
            code="invalid_value",
            param=params.max_tokens,
        )
    if (
        len(stop) > MAX_STOP_SEQUENCES
        or any(not item for item in stop)
        or any(len(item) > MAX_STOP_CHARS for item in stop)
    ):
        raise APIError(
            400,
            f"{params.stop} takes up to {MAX_STOP_SEQUENCES} non-empty strings of at most "
            f"{MAX_STOP_CHARS} characters.",
            code="invalid_value",
            param=params.stop,
        )
    try:
        model_id, engine = engines.resolve(model)
    except UnknownModel:
        raise APIError(
            404,
            f"The model '{model}' does not exist. Available: {', '.join(engines.model_ids())}.",
            code="model_not_found",
            param="model",
        ) from None
    request = GenerationRequest(
        messages=tuple(messages), model=model_id, max_tokens=tokens, stop=tuple(stop), **fields
    )
    check_request(request, params)
    try:
        engine.check(request)
    except EngineError as error:
        param = params.rename(error.param)
        text = error.message
        if param != error.param:  # the message quotes the field as the engine named it
            text = text.replace(f"'{error.param}'", f"'{param}'")
        raise APIError(
            400,
            text,
            error_type="invalid_request_error",
            code=error.code,
            param=param,
        ) from None
    return request, engine


def with_fields(request: GenerationRequest, **changes: Any) -> GenerationRequest:
    return dataclasses.replace(request, **changes)

"""One error vocabulary, rendered per dialect, and the handlers that turn every
failure into one.

An error has a status, a message, an OpenAI ``type`` (``invalid_request_error``,
``server_error`` …), and optionally a ``code`` and the ``param`` at fault. The
OpenAI dialects (Chat Completions, Responses) render it as
``{"error": {"message", "type", "param", "code"}}``; Anthropic Messages as
``{"type": "error", "error": {"type", "message"}}`` with Anthropic's type
names, chosen by status. Which dialect a request speaks follows from its path,
so middleware (auth, body limits) answers in the right shape too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from backend.engines.base import EngineError
from backend.hub.base import HubError

logger = logging.getLogger(__name__)


class APIError(Exception):
    """An error answered before streaming starts: status + OpenAI error body."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param
        self.headers = headers

    def body(self, dialect: Dialect = "openai") -> dict[str, Any]:
        return error_body(
            self.message,
            self.error_type,
            self.code,
            self.param,
            dialect=dialect,
            status_code=self.status_code,
        )


def api_error_from_engine(error: EngineError) -> APIError:
    """An engine failure answered before streaming: 400 for what the request asked
    for, 502 for an upstream fault, 500 otherwise."""
    if error.error_type == "invalid_request_error":
        status = 400
    elif error.error_type.startswith("upstream"):
        status = 502
    else:
        status = 500
    return APIError(
        status, error.message, error_type=error.error_type, code=error.code, param=error.param
    )


Dialect = Literal["openai", "anthropic"]

_ANTHROPIC_PREFIX = "/v1/messages"

# Anthropic's error types by HTTP status (docs: "Errors"); 529 is its "overloaded".
_ANTHROPIC_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "api_error",
    529: "overloaded_error",
}


def dialect_for_path(path: str) -> Dialect:
    return "anthropic" if path.startswith(_ANTHROPIC_PREFIX) else "openai"


def anthropic_error_type(status_code: int) -> str:
    if status_code in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status_code]
    return "invalid_request_error" if status_code < 500 else "api_error"


# Our error types (engine, hub, limits) that mean "busy, retry": Anthropic's overloaded_error.
_OVERLOADED = frozenset({"overloaded", "hub_unavailable", "shutting_down", "server_busy"})


def anthropic_stream_error_type(error_type: str) -> str:
    """Anthropic's type for an error that ends a stream (an ``event: error``):
    ``overloaded_error`` when the server is busy or going away, else ``api_error``."""
    if error_type in _OVERLOADED:
        return "overloaded_error"
    if error_type == "invalid_request_error":
        return "invalid_request_error"
    return "api_error"


def anthropic_error_event(message: str, error_type: str) -> dict[str, Any]:
    """The payload of Anthropic's in-band ``event: error`` (it ends the stream)."""
    return {
        "type": "error",
        "error": {"type": anthropic_stream_error_type(error_type), "message": message},
    }


def error_body(
    message: str,
    error_type: str,
    code: str | None = None,
    param: str | None = None,
    *,
    dialect: Dialect = "openai",
    status_code: int = 400,
) -> dict[str, Any]:
    if dialect == "anthropic":
        return {
            "type": "error",
            "error": {"type": anthropic_error_type(status_code), "message": message},
        }
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    status_code: int,
    message: str,
    error_type: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
    *,
    dialect: Dialect = "openai",
) -> JSONResponse:
    return JSONResponse(
        error_body(message, error_type, code, param, dialect=dialect, status_code=status_code),
        status_code=status_code,
        headers=headers,
    )


# Labels pydantic puts in an error's location for the branch of a union it
# tried ("str", "list[Part]", "function-after[…]"): not fields of the request.
_BRANCH_LABELS = frozenset({"str", "int", "float", "bool", "none", "dict", "list"})


def param_path(location: Sequence[int | str]) -> str:
    """A validation error's location as OpenAI names a field: ``messages[0].content``."""
    where = ""
    for part in location:
        if isinstance(part, int):
            where += f"[{part}]"
        elif (part == "body" and not where) or part in _BRANCH_LABELS or "[" in part:
            continue
        else:
            where += f".{part}" if where else part
    return where


def _describe_validation(error: RequestValidationError) -> tuple[str, str | None]:
    problems = []
    first_param: str | None = None
    for item in error.errors():
        where = param_path(item.get("loc", ()))
        if first_param is None and where:
            first_param = where
        if item.get("type") == "json_invalid":
            return f"Request body is not valid JSON: {item.get('msg', '')}", None
        problems.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(problems[:5]), first_param


def _allowed_methods(request: Request) -> str:
    """Every method some route takes at this path: Starlette's 405 names only the
    first route's, wrong for a path served by several (GET and DELETE of a response)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods:
            match, _ = route.matches(request.scope)
            if match != Match.NONE:
                methods.update(route.methods)
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIError)
        return error_response(
            exc.status_code,
            exc.message,
            exc.error_type,
            exc.code,
            exc.param,
            exc.headers,
            dialect=dialect_for_path(request.url.path),
        )

    async def on_hub_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HubError)
        headers = {"Retry-After": "1"} if exc.status_code == 503 else None
        return error_response(
            exc.status_code,
            exc.message,
            exc.error_type,
            headers=headers,
            dialect=dialect_for_path(request.url.path),
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, param = _describe_validation(exc)
        return error_response(
            400,
            message,
            "invalid_request_error",
            "invalid_value",
            param,
            dialect=dialect_for_path(request.url.path),
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = "request_too_large" if exc.status_code == 413 else None
        headers = exc.headers
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return error_response(
            exc.status_code,
            str(exc.detail),
            "invalid_request_error",
            code,
            headers=headers,
            dialect=dialect_for_path(request.url.path),
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(
            500,
            "Internal server error.",
            "server_error",
            dialect=dialect_for_path(request.url.path),
        )

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(HubError, on_hub_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)

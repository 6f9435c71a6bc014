"""OpenAI-style error bodies, and the handlers that turn every failure into one."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def error_body(
    message: str, error_type: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    status_code: int,
    message: str,
    error_type: str,
    code: str | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(message, error_type, code, param), status_code=status_code, headers=headers
    )


def _describe_validation(error: RequestValidationError) -> tuple[str, str | None]:
    problems = []
    first_param: str | None = None
    for item in error.errors():
        location = [str(part) for part in item.get("loc", ()) if part != "body"]
        where = ".".join(location)
        if first_param is None and where:
            first_param = where
        if item.get("type") == "json_invalid":
            return f"Request body is not valid JSON: {item.get('msg', '')}", None
        problems.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "Invalid request: " + "; ".join(problems[:5]), first_param


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, APIError)
        return error_response(
            exc.status_code, exc.message, exc.error_type, exc.code, exc.param, exc.headers
        )

    async def on_hub_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HubError)
        headers = {"Retry-After": "1"} if exc.status_code == 503 else None
        return error_response(exc.status_code, exc.message, exc.error_type, headers=headers)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        message, param = _describe_validation(exc)
        return error_response(400, message, "invalid_request_error", "invalid_value", param)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = "request_too_large" if exc.status_code == 413 else None
        return error_response(
            exc.status_code, str(exc.detail), "invalid_request_error", code, headers=exc.headers
        )

    async def on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return error_response(500, "Internal server error.", "server_error")

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(HubError, on_hub_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)

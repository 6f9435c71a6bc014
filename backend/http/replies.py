"""Error replies the HTTP layer sends itself (protocol, middleware), rendered once.

Every refusal made before a route runs (401, 408, 413, 431, 503) goes
through ``error_json``, which delegates to ``backend.errors``: one error
vocabulary, whether the request reached FastAPI or not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.types import Send

from backend.errors import dialect_for_path, error_body


def error_json(
    path: str,
    status: int,
    message: str,
    error_type: str,
    code: str | None = None,
    param: str | None = None,
) -> bytes:
    """The error body for a request to ``path``, as JSON bytes, in the path's dialect."""
    body = error_body(
        message, error_type, code, param, dialect=dialect_for_path(path), status_code=status
    )
    return json.dumps(body).encode()


def raw_response(
    status_line: bytes, body: bytes, headers: Mapping[str, str] | None = None
) -> bytes:
    """A whole HTTP/1.1 response that closes the connection (for the protocol layer)."""
    lines = [
        status_line,
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n",
    ]
    lines.extend(
        f"{name.lower()}: {value}\r\n".encode("latin-1") for name, value in (headers or {}).items()
    )
    return b"".join([*lines, b"\r\n", body])


async def send_error(
    send: Send,
    path: str,
    status: int,
    message: str,
    error_type: str,
    code: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    close: bool = False,
) -> None:
    """Answer an ASGI request with an error body (from middleware, before any route)."""
    body = error_json(path, status, message, error_type, code)
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        raw_headers.append((b"connection", b"close"))
    raw_headers.extend((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})

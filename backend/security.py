"""API keys: who may call the API, which key owns a stream, and what may be logged.

- ``APIKeyAuth`` (pure ASGI middleware) answers 401 for every protected path
  (``/v1/*``, ``/metrics``, and the API docs ``/docs``, ``/redoc``,
  ``/openapi.json`` unless ``SSECHAT_OPEN_DOCS``; not ``/healthz`` or
  ``/readyz``, which load balancers probe without credentials) before the
  route runs and before the body is read, so no route can forget the check
  and an anonymous caller cannot make us parse a megabyte of JSON.
- A key comes as ``Authorization: Bearer <key>`` (OpenAI's SDKs) or
  ``x-api-key: <key>`` (Anthropic's); a Bearer token wins when both are sent.
- ``authenticate`` gives a route the caller's owner tag (streams are stored
  with it; resume and cancel compare it).
- Keys are compared as SHA-256 digests with ``hmac.compare_digest``, against
  every configured key, always: the time taken says nothing about which key
  (or how much of one) matched, not even its length.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Awaitable, Sequence
from functools import lru_cache

from fastapi import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.errors import APIError
from backend.http.replies import send_error

logger = logging.getLogger(__name__)

# Paths that need a key. Prefix match for /v1/ (every OpenAI-style route), exact for the rest.
PROTECTED_PREFIXES: tuple[str, ...] = ("/v1/",)
PROTECTED_PATHS: frozenset[str] = frozenset({"/metrics"})
# FastAPI's interactive docs and the schema they load: protected unless opened by a setting.
DOCS_PATHS: frozenset[str] = frozenset(
    {"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def key_owner(api_key: str) -> str:
    """A stable, non-reversible owner tag for a key (stored with streams, e.g. in Redis)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


@lru_cache(maxsize=8)
def _digests(api_keys: tuple[str, ...]) -> tuple[bytes, ...]:
    return tuple(_digest(key) for key in api_keys)


def _missing() -> APIError:
    return APIError(
        401,
        "Missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'.",
        error_type="invalid_request_error",
        code="invalid_api_key",
        headers=dict(_CHALLENGE),
    )


def _incorrect() -> APIError:
    # Never echo the key back (OpenAI does, partly; a log or a proxy may keep it).
    return APIError(
        401,
        "Incorrect API key provided.",
        error_type="invalid_request_error",
        code="invalid_api_key",
        headers=dict(_CHALLENGE),
    )


def _presented_key(authorization: str | None, x_api_key: str | None) -> str:
    """The key a request presents: a Bearer token, else ``x-api-key``; "" for none."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    # RFC 6750 §2.1: the scheme is case-insensitive.
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return (x_api_key or "").strip()


def owner_for_header(
    authorization: str | None, api_keys: Sequence[str], x_api_key: str | None = None
) -> str | None:
    """The owner tag for the ``Authorization`` / ``x-api-key`` header values;
    ``None`` when the API is open.

    Raises a 401 ``APIError`` for a missing, malformed or unknown key.
    """
    if not api_keys:
        return None
    token = _presented_key(authorization, x_api_key)
    if not token:
        raise _missing()
    supplied = _digest(token)
    matched = False
    # Every key, always, no early exit: timing does not tell which one matched.
    for digest in _digests(tuple(api_keys)):
        matched |= hmac.compare_digest(supplied, digest)
    if not matched:
        raise _incorrect()
    return key_owner(token)


def authenticate(request: Request, api_keys: list[str]) -> str | None:
    """Return the caller's owner tag, ``None`` when the API is open; 401 otherwise."""
    headers = request.headers
    return owner_for_header(headers.get("authorization"), api_keys, headers.get("x-api-key"))


def is_protected(path: str, *, open_docs: bool = False) -> bool:
    return (
        path in PROTECTED_PATHS
        or path.startswith(PROTECTED_PREFIXES)
        or (not open_docs and path in DOCS_PATHS)
    )


class APIKeyAuth:
    """401 for protected paths without a valid key, before the app sees the request.

    Sits inside the CORS middleware, so preflight requests (which browsers
    send without credentials) are answered by CORS, and a 401 still carries
    the CORS headers a page needs to read it.
    """

    def __init__(self, app: ASGIApp, api_keys: Sequence[str], *, open_docs: bool = False) -> None:
        self.app = app
        self.api_keys = tuple(api_keys)
        self.open_docs = open_docs

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine itself: it returns the app's (or the refusal's), so an
        # open stream holds no frame of this layer for its whole life.
        if scope["type"] != "http" or not self.api_keys:
            return self.app(scope, receive, send)
        path: str = scope["path"]
        root_path: str = scope.get("root_path", "")
        if root_path and path.startswith(root_path):
            path = path[len(root_path) :]
        if is_protected(path, open_docs=self.open_docs):
            authorization = x_api_key = None
            for name, value in scope["headers"]:
                if name == b"authorization" and authorization is None:
                    authorization = value.decode("latin-1")
                elif name == b"x-api-key" and x_api_key is None:
                    x_api_key = value.decode("latin-1")
            try:
                owner_for_header(authorization, self.api_keys, x_api_key)
            except APIError as error:
                return send_error(
                    send,
                    path,
                    error.status_code,
                    error.message,
                    error.error_type,
                    error.code,
                    headers=error.headers,
                )
        return self.app(scope, receive, send)

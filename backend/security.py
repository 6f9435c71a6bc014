"""API keys: who may call the API, and which key owns a stream."""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from backend.errors import APIError


def key_owner(api_key: str) -> str:
    """A stable, non-reversible owner tag for a key (stored with streams, e.g. in Redis)."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


def authenticate(request: Request, api_keys: list[str]) -> str | None:
    """Return the caller's owner tag, ``None`` when the API is open; 401 otherwise."""
    if not api_keys:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise APIError(
            401,
            "Missing API key: send 'Authorization: Bearer <key>'.",
            error_type="invalid_request_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    supplied = token.encode()
    matched = False
    # Compare with every key, always, so timing says nothing about which one matched.
    for key in api_keys:
        matched |= hmac.compare_digest(supplied, key.encode())
    if not matched:
        raise APIError(
            401,
            "Incorrect API key provided.",
            error_type="invalid_request_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return key_owner(token)

"""The uvicorn config every server of ours uses (``python -m backend``, its workers, ui/server.py).

One place turns the HTTP-layer settings into uvicorn options: our
``GuardedHttpProtocol`` with its limits, the idle keep-alive timeout, the
connection cap, and which peers may set ``X-Forwarded-For``/``-Proto``.
"""

from __future__ import annotations

from typing import Any

from backend.config import Settings
from backend.http.protocol import HttpLimits, ServerConfig

__all__ = ["http_limits", "server_config"]


def http_limits(settings: Settings) -> HttpLimits:
    return HttpLimits(
        max_header_bytes=settings.max_header_bytes,
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        body_min_bytes_per_s=settings.body_min_bytes_per_s,
    )


def server_config(app: Any, settings: Settings, **options: Any) -> ServerConfig:
    """A ``ServerConfig`` for ``app`` with the HTTP-layer ``settings``; ``options`` go to uvicorn.

    Forwarded headers: uvicorn trusts 127.0.0.1 unless told otherwise, so any
    local client could pick its own address (and dodge per-address limits).
    Here nobody is trusted unless ``forwarded_allow_ips`` names them.
    """
    trusted = settings.forwarded_allow_ips.strip()
    return ServerConfig(
        app,
        limits=http_limits(settings),
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted or None,
        timeout_keep_alive=settings.keep_alive_timeout_s,
        limit_concurrency=settings.max_connections or None,
        **options,
    )

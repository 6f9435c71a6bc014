"""``python -m backend``: serve the API with uvicorn, and shut down without cutting streams.

Command-line options override the ``SSECHAT_*`` environment; they are
written back into the environment so every worker process (``--workers``)
builds the same ``Settings``.

Graceful shutdown: see ``backend/serving.py``. With several workers, a
directory for their metrics (``SSECHAT_METRICS_DIR``, or a temporary one)
is emptied before they start, so ``/metrics`` covers the deployment.
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import uvicorn
import uvicorn.config
from uvicorn.config import STARTUP_FAILURE

from backend.config import Settings, get_settings
from backend.http.server import server_config
from backend.metrics.shared import deployment_directory
from backend.serving import DrainingMultiprocess, DrainingServer

logger = logging.getLogger("backend")

_OPTIONS = {
    "host": "SSECHAT_HOST",
    "port": "SSECHAT_PORT",
    "workers": "SSECHAT_WORKERS",
    "engine": "SSECHAT_ENGINE",
    "model": "SSECHAT_MODEL",
    "upstream_url": "SSECHAT_UPSTREAM_URL",
    "hub": "SSECHAT_HUB",
    "redis_url": "SSECHAT_REDIS_URL",
    "log_level": "SSECHAT_LOG_LEVEL",
    "forwarded_allow_ips": "SSECHAT_FORWARDED_ALLOW_IPS",
    "max_connections": "SSECHAT_MAX_CONNECTIONS",
    "keep_alive_timeout": "SSECHAT_KEEP_ALIVE_TIMEOUT_S",
    "max_header_bytes": "SSECHAT_MAX_HEADER_BYTES",
    "header_timeout": "SSECHAT_HEADER_TIMEOUT_S",
    "body_timeout": "SSECHAT_BODY_TIMEOUT_S",
    "body_min_rate": "SSECHAT_BODY_MIN_BYTES_PER_S",
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description="ssechat API: OpenAI-compatible chat completions over Server-Sent Events.",
        epilog="Every option is also an environment variable SSECHAT_<NAME>; see README.",
    )
    parser.add_argument("--host", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--workers", type=int, help="worker processes (needs --hub redis)")
    parser.add_argument("--engine", choices=["auto", "simulated", "llama", "openai"])
    parser.add_argument("--model", help="model id to serve")
    parser.add_argument("--upstream-url", help="OpenAI-compatible base URL for --engine openai")
    parser.add_argument("--hub", choices=["memory", "redis"])
    parser.add_argument("--redis-url", help="redis://host:port/db for --hub redis")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    http = parser.add_argument_group("HTTP limits (checked before any route or auth)")
    http.add_argument(
        "--forwarded-allow-ips",
        help="proxies trusted to set X-Forwarded-For/-Proto: addresses or networks, "
        "comma-separated, * = any (default: none)",
    )
    http.add_argument(
        "--max-connections", type=int, help="open connections per worker, 503 beyond (16384)"
    )
    http.add_argument(
        "--keep-alive-timeout",
        type=int,
        help="idle seconds before a kept-alive connection closes (5)",
    )
    http.add_argument(
        "--max-header-bytes", type=int, help="request line + headers, 431 beyond (65536)"
    )
    http.add_argument(
        "--header-timeout", type=float, help="seconds to receive a request's headers (10)"
    )
    http.add_argument(
        "--body-timeout", type=float, help="longest silence while reading a body, seconds (10)"
    )
    http.add_argument("--body-min-rate", type=int, help="slowest average body rate, bytes/s (1024)")
    return parser.parse_args(argv)


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup plus a root handler for our own loggers.

    uvicorn applies it in every process it starts, so ``--workers`` children
    log like a single worker does (``logging.basicConfig`` in the parent would
    not reach spawned children).
    """
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["ssechat"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["ssechat"] = {
        "formatter": "ssechat",
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
    }
    config["root"] = {"handlers": ["ssechat"], "level": level.upper()}
    return config


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    return server_config(
        "backend.app:app_from_environment",
        settings,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_config=log_config(settings.log_level),
        log_level=settings.log_level,
        loop="uvloop",
        timeout_graceful_shutdown=max(1, round(settings.shutdown_timeout_s)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for option, variable in _OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            os.environ[variable] = str(value)
    get_settings.cache_clear()
    try:
        settings: Settings = get_settings()
    except Exception as error:  # pydantic's message names the bad variable
        sys.stderr.write(f"invalid settings: {error}\n")
        return 2
    if settings.workers > 1 and settings.hub != "redis":
        sys.stderr.write(
            "--workers > 1 needs the redis hub (--hub redis --redis-url ...): with the memory "
            "hub each worker has its own streams, so resume and cancel would miss.\n"
        )
        return 2
    if settings.workers > 1:
        # Each worker publishes its metrics there; /metrics adds them up (backend/metrics).
        with deployment_directory(settings.metrics_dir) as metrics_dir:
            os.environ["SSECHAT_METRICS_DIR"] = str(metrics_dir)  # read by the spawned workers
            config = uvicorn_config(settings)
            sock = config.bind_socket()
            try:
                DrainingMultiprocess(config, sockets=[sock], metrics_dir=metrics_dir).run()
            finally:
                sock.close()
        return 0
    config = uvicorn_config(settings)
    server = DrainingServer(config)
    server.run()
    return 0 if server.started else STARTUP_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())

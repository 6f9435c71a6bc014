"""``python -m backend``: serve the API with uvicorn.

Command-line options override the ``SSECHAT_*`` environment; they are
written back into the environment so every worker process (``--workers``)
builds the same ``Settings``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import uvicorn

from backend.config import Settings, get_settings

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
    return parser.parse_args(argv)


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
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if settings.workers > 1 and settings.hub != "redis":
        sys.stderr.write(
            "--workers > 1 needs the redis hub (--hub redis --redis-url ...): with the memory "
            "hub each worker has its own streams, so resume and cancel would miss.\n"
        )
        return 2
    uvicorn.run(
        "backend.app:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

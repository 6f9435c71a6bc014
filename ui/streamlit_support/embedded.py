"""The embedded backend of the Streamlit twin: the API under uvicorn in a daemon thread.

Streamlit runs its own server (Tornado) on its own port, so the backend cannot
share it as it does under Gradio; it gets a port of its own on loopback, and
the page reaches it over HTTP through ``ui.client`` like any remote backend.
The socket is bound before uvicorn starts, so a free port (``port=0``) cannot
be taken by someone else in between. One backend per process: the page asks
for it through ``st.cache_resource``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from backend.config import Settings

__all__ = ["EmbeddedBackend", "start_backend"]

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"


@dataclass
class EmbeddedBackend:
    """A running backend: where it listens, the key the page should send, how to stop it."""

    url: str
    api_key: str | None
    keepalive_s: float
    _stop: Callable[[], None]

    def stop(self) -> None:
        self._stop()


def start_backend(
    settings: Settings,
    *,
    port: int = 0,
    api_factory: Callable[[Settings], FastAPI] | None = None,
    startup_timeout_s: float = 300.0,
) -> EmbeddedBackend:
    """Build the API (``backend.app.create_app`` unless ``api_factory``) and serve it on
    ``127.0.0.1:port`` in a daemon thread; return once its lifespan started (engine loaded)."""
    import uvicorn

    from backend.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    bound: int = sock.getsockname()[1]
    # The backend's own bind-address check must see where it really listens.
    settings = settings.model_copy(update={"host": HOST, "port": bound})
    app = (api_factory or create_app)(settings)
    config = uvicorn.Config(
        app, log_level=settings.log_level.lower(), timeout_graceful_shutdown=3, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"ssechat-backend:{bound}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            sock.close()
            raise RuntimeError(f"the embedded backend on port {bound} exited during start-up")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the embedded backend did not start in {startup_timeout_s:g}s")
        time.sleep(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10.0)
        sock.close()

    keys = settings.api_key_list
    url = f"http://{HOST}:{bound}"
    logger.info("embedded backend on %s (engine %s)", url, settings.engine)
    return EmbeddedBackend(
        url=url,
        api_key=keys[0] if keys else None,  # the page is a client like any other
        keepalive_s=settings.keepalive_s,
        _stop=stop,
    )

"""Wiring: one ASGI app serving the UI (and, embedded, the API) on one port.

Embedded (``SSECHAT_BACKEND_URL`` unset, the Hugging Face Space case): the
backend's FastAPI app is built in-process by ``backend.app.create_app``, the
``/demo`` page is added, and Gradio is mounted at ``/`` last, so the API routes
and ``/demo`` win over Gradio's catch-all. The UI still reaches the API over
HTTP, through ``ui.client``, on its own port: the UI is a pure SSE client and
behaves the same against a remote backend.

Remote (``SSECHAT_BACKEND_URL=http://host:port``): a plain FastAPI app with
``/demo`` and the Gradio UI, talking to that backend.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from ui.gradio_ui.handlers import Handlers
from ui.gradio_ui.layout import CSS_PATH, THEME, build_blocks, page_js
from ui.gradio_ui.link import BackendLink

if TYPE_CHECKING:
    from backend.config import Settings

__all__ = ["UIConfig", "build_app", "config_from_env", "serve"]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
_WILDCARDS = {"0.0.0.0", "", "::", "[::]"}


@dataclass(frozen=True, slots=True)
class UIConfig:
    """Where to listen and which backend to use; see ``config_from_env`` for the variables."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    backend_url: str | None = None  # None = build the backend in-process (embedded)
    api_key: str | None = None  # remote mode: key the UI sends to the backend
    coalesce_ms: float = 40.0
    read_timeout_s: float = 60.0
    auth: tuple[tuple[str, str], ...] = ()  # Gradio login; empty = no login page

    @property
    def embedded(self) -> bool:
        return self.backend_url is None

    @property
    def self_url(self) -> str:
        """How this process reaches its own port (a wildcard bind is reachable on loopback)."""
        host = "127.0.0.1" if self.host in _WILDCARDS else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def config_from_env(env: Mapping[str, str] | None = None) -> UIConfig:
    """``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` (Gradio's own names, which Spaces set),
    ``SSECHAT_BACKEND_URL``, ``SSECHAT_BACKEND_API_KEY`` (remote only),
    ``SSECHAT_UI_COALESCE_MS`` (0 = one browser update per token),
    ``SSECHAT_UI_READ_TIMEOUT_S`` (must exceed the backend's keep-alive interval) and
    ``SSECHAT_UI_AUTH`` (``user:password[,user:password…]``: Gradio's login page).
    """
    env = os.environ if env is None else env
    backend_url = env.get("SSECHAT_BACKEND_URL", "").strip() or None
    return UIConfig(
        host=env.get("GRADIO_SERVER_NAME", "").strip() or DEFAULT_HOST,
        port=int(env.get("GRADIO_SERVER_PORT", "").strip() or DEFAULT_PORT),
        backend_url=backend_url.rstrip("/") if backend_url else None,
        api_key=env.get("SSECHAT_BACKEND_API_KEY", "").strip() or None,
        coalesce_ms=float(env.get("SSECHAT_UI_COALESCE_MS", "").strip() or 40.0),
        read_timeout_s=float(env.get("SSECHAT_UI_READ_TIMEOUT_S", "").strip() or 60.0),
        auth=parse_ui_auth(env.get("SSECHAT_UI_AUTH", "")),
    )


def parse_ui_auth(value: str) -> tuple[tuple[str, str], ...]:
    """``user:password`` pairs, comma-separated; the password may contain ``:``."""
    pairs = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        user, separator, password = item.partition(":")
        if not separator or not user or not password:
            raise ValueError("SSECHAT_UI_AUTH takes user:password pairs separated by commas")
        pairs.append((user, password))
    return tuple(pairs)


def _demo_page(api_base: str) -> str:
    template = resources.files("ui").joinpath("static/demo.html").read_text("utf-8")
    return template.replace("{{API_BASE}}", html.escape(api_base, quote=True))


def build_app(
    config: UIConfig,
    *,
    backend_settings: Settings | None = None,
    api_factory: Callable[[Settings], FastAPI] | None = None,
) -> FastAPI:
    """The whole ASGI app.

    Embedded mode only: ``backend_settings`` replaces the environment's settings,
    ``api_factory`` replaces ``backend.app.create_app`` (the benchmark plugs in an
    engine that stamps tokens with their emit time).
    """
    if config.embedded:
        # The one place ui/ touches backend/: building its app to serve it on our port.
        from backend.app import create_app
        from backend.config import get_settings

        settings = backend_settings or get_settings()
        # The backend's own bind-address check (open API on a public address) must see ours.
        settings = settings.model_copy(update={"host": config.host, "port": config.port})
        app = (api_factory or create_app)(settings)
        keys = settings.api_key_list
        api_key = keys[0] if keys else None  # the embedded UI is a client like any other
        link = BackendLink(
            config.self_url,
            label=f"embedded · {config.self_url}",
            api_key=api_key,
            read_timeout_s=max(config.read_timeout_s, settings.keepalive_s * 2 + 5),
        )
        demo_api_base = ""  # same origin
    else:
        assert config.backend_url is not None
        app = FastAPI(title="ssechat UI")
        link = BackendLink(
            config.backend_url,
            label=config.backend_url,
            api_key=config.api_key,
            read_timeout_s=config.read_timeout_s,
        )
        demo_api_base = config.backend_url  # needs SSECHAT_CORS_ORIGINS on that backend

    page = _demo_page(demo_api_base)

    @app.get("/demo", response_class=HTMLResponse, include_in_schema=False)
    async def demo() -> HTMLResponse:
        return HTMLResponse(page, headers={"Cache-Control": "no-cache"})

    _close_on_shutdown(app, link)
    handlers = Handlers(link, coalesce_s=config.coalesce_ms / 1000.0)
    blocks = build_blocks(handlers)
    # Gradio's default of one event at a time per function would queue users behind each other.
    blocks.queue(default_concurrency_limit=None)
    mounted: FastAPI = gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        server_name=config.host,
        server_port=config.port,
        ssr_mode=False,
        theme=THEME,
        css_paths=[CSS_PATH],
        js=page_js(),
        footer_links=["api", "gradio", "settings"],
        run_history=False,
        auth=list(config.auth) or None,
    )
    return mounted


def _close_on_shutdown(app: FastAPI, link: BackendLink) -> None:
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            try:
                yield state
            finally:
                await link.aclose()

    app.router.lifespan_context = lifespan


def serve(config: UIConfig | None = None) -> None:
    """Run the app with uvicorn until interrupted."""
    import uvicorn

    config = config or config_from_env()
    app = build_app(config)
    mode = "embedded backend" if config.embedded else f"backend {config.backend_url}"
    logger.info("ssechat UI on http://%s:%d (%s)", config.host, config.port, mode)
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": os.environ.get("SSECHAT_LOG_LEVEL", "info").lower(),
        # Open SSE streams would otherwise hold a Ctrl+C / SIGTERM for a long time.
        "timeout_graceful_shutdown": 3,
    }
    server: uvicorn.Server
    if config.embedded:
        # Embedded, the API gets the HTTP limits of ``python -m backend`` (header
        # bytes, read timeouts, connection cap, trusted proxies) and its streams
        # end with a final event on SIGTERM (see backend/http/ and backend/serving.py).
        from backend.config import get_settings
        from backend.http.server import server_config
        from backend.serving import DrainingServer

        server = DrainingServer(server_config(app, get_settings(), **options))
    else:
        server = uvicorn.Server(uvicorn.Config(app, **options))
    server.run()

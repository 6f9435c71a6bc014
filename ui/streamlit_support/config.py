"""The Streamlit twin's settings, from the environment (the same names as the Gradio UI's)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["StreamlitConfig", "config_from_env"]


@dataclass(frozen=True, slots=True)
class StreamlitConfig:
    backend_url: str | None = None  # None = start the backend in a thread of this process
    api_key: str | None = None  # remote mode: the key sent to the backend
    read_timeout_s: float = 60.0
    backend_port: int = 0  # embedded mode: 0 = any free port

    @property
    def embedded(self) -> bool:
        return self.backend_url is None


def config_from_env(env: Mapping[str, str] | None = None) -> StreamlitConfig:
    """``SSECHAT_BACKEND_URL``, ``SSECHAT_BACKEND_API_KEY``, ``SSECHAT_UI_READ_TIMEOUT_S``
    (as for ``python ui/app.py``) and ``SSECHAT_STREAMLIT_BACKEND_PORT`` (embedded backend's
    port; 0 = any free port). Streamlit's own address is Streamlit's: ``--server.port``."""
    env = os.environ if env is None else env
    url = env.get("SSECHAT_BACKEND_URL", "").strip() or None
    return StreamlitConfig(
        backend_url=url.rstrip("/") if url else None,
        api_key=env.get("SSECHAT_BACKEND_API_KEY", "").strip() or None,
        read_timeout_s=float(env.get("SSECHAT_UI_READ_TIMEOUT_S", "").strip() or 60.0),
        backend_port=int(env.get("SSECHAT_STREAMLIT_BACKEND_PORT", "").strip() or 0),
    )

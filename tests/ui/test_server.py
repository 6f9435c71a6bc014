"""ui/server.py: configuration from the environment, and the remote-mode app."""

from __future__ import annotations

import httpx

from tests.servers import serve_app
from ui.server import UIConfig, build_app, config_from_env


def test_defaults_are_local_and_embedded() -> None:
    config = config_from_env({})
    assert (config.host, config.port) == ("127.0.0.1", 7860)
    assert config.embedded
    assert config.coalesce_ms == 40.0


def test_gradio_and_ssechat_variables_are_honoured() -> None:
    config = config_from_env(
        {
            "GRADIO_SERVER_NAME": "0.0.0.0",
            "GRADIO_SERVER_PORT": "8080",
            "SSECHAT_BACKEND_URL": "http://backend:8000/",
            "SSECHAT_BACKEND_API_KEY": "k",
            "SSECHAT_UI_COALESCE_MS": "0",
        }
    )
    assert (config.host, config.port) == ("0.0.0.0", 8080)
    assert config.backend_url == "http://backend:8000"
    assert not config.embedded
    assert config.api_key == "k"
    assert config.coalesce_ms == 0.0


def test_a_wildcard_bind_is_reached_on_loopback() -> None:
    assert UIConfig(host="0.0.0.0", port=7860).self_url == "http://127.0.0.1:7860"
    assert UIConfig(host="::1", port=1).self_url == "http://[::1]:1"
    assert UIConfig(host="example.test", port=2).self_url == "http://example.test:2"


def test_remote_mode_serves_the_ui_and_a_demo_page_pointing_at_the_backend() -> None:
    app = build_app(UIConfig(backend_url='http://backend:8000/"><script>'))
    with serve_app(app) as url:
        demo = httpx.get(f"{url}/demo", timeout=10)
        assert demo.status_code == 200
        assert 'content="http://backend:8000/&quot;&gt;&lt;script&gt;"' in demo.text
        assert httpx.get(f"{url}/", timeout=10).status_code == 200  # Gradio
        assert httpx.get(f"{url}/v1/models", timeout=10).status_code != 200  # no API here

"""Fixtures for the UI tests: real backends (in a thread or a process) and ``python ui/app.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from backend.app import create_app
from backend.config import Settings
from tests.backend.fault_engines import FailingEngine
from tests.chromium import CHROMIUM, CHROMIUM_ARGS
from tests.servers import serve_app
from tests.ui.helpers import TOKENS_PER_S, run_ui_process
from tests.ui.scripted_backend import ScriptedBackend
from ui.server import UIConfig, build_app


def backend_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"engine": "simulated", "sim_tokens_per_s": TOKENS_PER_S}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="module")
def backend_url() -> Iterator[str]:
    """A live backend (simulated engine, plus a ``failing`` model that errors mid-answer)."""
    app = create_app(
        backend_settings(keepalive_s=0.2),
        extra_engines=[FailingEngine("failing", tokens_before_failure=3, crash=False)],
    )
    with serve_app(app) as url:
        yield url


@pytest.fixture(scope="module")
def faulty_backend_url() -> Iterator[str]:
    """A backend whose every SSE response is cut after 3 events (test-only fault switch)."""
    app = create_app(
        backend_settings(fault_close_after_events=3, retry_ms=20, sim_tokens_per_s=200.0)
    )
    with serve_app(app) as url:
        yield url


@pytest.fixture(scope="session")
def ui_url() -> Iterator[str]:
    """``python ui/app.py`` with the backend embedded (one process, one port)."""
    with run_ui_process() as url:
        yield url


@pytest.fixture(scope="session")
def faulty_ui_url() -> Iterator[str]:
    """Embedded, with every SSE response cut after 5 events: clients must resume."""
    with run_ui_process({"SSECHAT_FAULT_CLOSE_AFTER_EVENTS": "5", "SSECHAT_RETRY_MS": "50"}) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API keeps an event loop running while it is open,
    and the async tests of other modules need theirs."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context (no saved chats) at the size of a laptop screen."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ScriptedBackend, str]]:
    """The scripted backend (every delta kind, three dialects); streams pause after 3 events."""
    backend = ScriptedBackend(pause_after=3)
    with serve_app(backend.app()) as url:
        yield backend, url


@pytest.fixture(scope="module")
def scripted_ui_url(scripted: tuple[ScriptedBackend, str]) -> Iterator[str]:
    """The Gradio UI in remote mode, in this process, on the scripted backend."""
    with serve_app(build_app(UIConfig(backend_url=scripted[1]))) as url:
        yield url

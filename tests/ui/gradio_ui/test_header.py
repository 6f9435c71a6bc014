"""ui/gradio_ui/header.py: neutral while checking, honest about the model, links to /demo."""

from __future__ import annotations

from ui.gradio_ui.header import header_html

HEALTH = {"status": "ok", "engine": "llama", "model": "gemma-3-270m", "hub": "memory", "note": ""}


def test_checking_is_not_an_error() -> None:
    page = header_html("http://b", None)
    assert "checking…" in page
    assert "ssechat-bad" not in page
    assert "unreachable" not in page


def test_a_failed_check_says_unreachable_and_why() -> None:
    page = header_html("http://b", None, "connection refused")
    assert "unreachable" in page
    assert "ssechat-bad" in page
    assert "connection refused" in page


def test_engine_model_hub_health_and_the_model_note() -> None:
    page = header_html("http://b", HEALTH)
    for expected in ("http://b", "llama", "gemma-3-270m", "memory", "ssechat-ok"):
        assert expected in page
    assert "tiny local base model" in page
    assert "SSECHAT_ENGINE=openai" in page  # the full note, on the model pill's tooltip


def test_the_backends_own_warning_is_shown_and_escaped() -> None:
    page = header_html("http://b", {**HEALTH, "engine": "simulated", "note": "auto: <fallback>"})
    assert "auto: &lt;fallback&gt;" in page
    assert "not a language model" in page


def test_links_to_the_eventsource_demo() -> None:
    assert 'href="demo"' in header_html("http://b", HEALTH)

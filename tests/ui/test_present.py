"""ui/present.py: what both UIs say about a stopped answer and about the model."""

from __future__ import annotations

from tests.ui.gradio_ui.answers import built_answer
from ui.present import answer_note, model_note, model_summary, stopped_note, text_placeholder


def test_stopped_note_says_how_long_and_how_many_tokens() -> None:
    answer = built_answer([("content", "a", None, None, None)] * 3, cancelled=True)
    assert stopped_note(answer) == "stopped · 0.5 s · 3 tokens"
    assert answer_note(answer, stopped=False) == "stopped · 0.5 s · 3 tokens"
    assert answer_note(built_answer([]), stopped=False) is None


def test_the_model_note_is_honest_for_each_engine() -> None:
    llama = model_note({"engine": "llama", "model": "gemma-3-270m"})
    assert "gemma-3-270m" in llama
    assert "often wrong" in llama
    assert "SSECHAT_ENGINE=openai" in llama
    assert "SSECHAT_UPSTREAM_URL" in llama
    assert "not a language model" in model_note({"engine": "simulated", "model": "s"})
    assert "upstream" in model_note({"engine": "openai", "model": "gpt"})
    assert "unknown" in model_note(None)


def test_nothing_promises_what_a_base_model_cannot_do() -> None:
    for engine in ("llama", "simulated", "openai", ""):
        health = {"engine": engine, "model": "m"}
        for text in (text_placeholder(health), model_summary(health), model_note(health)):
            assert "Ask anything" not in text
    assert "often wrong" in text_placeholder({"engine": "llama"})

"""Words the two UIs (Gradio and Streamlit) show about an answer and a model.

Framework-free, so the Gradio app and the Streamlit twin say the same thing
the same way: the line under a stopped answer, and the honest note on what
the serving model is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ui.client import Answer

__all__ = ["answer_note", "model_note", "model_summary", "stopped_note", "text_placeholder"]

OPENAI_HINT = (
    "For real answers, point the backend at a capable model: "
    "`SSECHAT_ENGINE=openai SSECHAT_UPSTREAM_URL=http://host:port/v1` "
    "(OpenAI, vLLM, Ollama, llama.cpp server)."
)


def stopped_note(answer: Answer) -> str:
    """``stopped · 1.4 s · 12 tokens``: what a stopped answer got before Stop."""
    metrics = answer.metrics
    return f"stopped · {metrics.duration_s:.1f} s · {metrics.tokens} tokens"


def answer_note(answer: Answer, *, stopped: bool) -> str | None:
    """The line under an answer that did not simply finish, or that needed resuming."""
    parts: list[str] = []
    if stopped or answer.cancelled:
        parts.append(stopped_note(answer))
    if answer.metrics.reconnects:
        parts.append(f"resumed {answer.metrics.reconnects}× (Last-Event-ID)")
    return " · ".join(parts) or None


def model_note(health: Mapping[str, Any] | None) -> str:
    """Markdown: what the serving model is and what to expect of it (from ``/healthz``)."""
    if health is None:
        return "The backend has not answered yet: the model is unknown."
    engine = str(health.get("engine") or "")
    model = str(health.get("model") or "the default model")
    if engine == "llama":
        return (
            f"**{model}** runs on this machine's CPU (llama.cpp). It is a tiny model "
            "(Gemma 3 270M by default): it writes fluent text that continues yours, but it "
            "knows little, follows instructions loosely and is often wrong. Use it to watch "
            f"tokens stream, not for answers. {OPENAI_HINT}"
        )
    if engine == "simulated":
        return (
            f"**{model}** is the simulated engine: deterministic placeholder text at a fixed "
            "rate, for testing the streaming path. It is not a language model. "
            f"{OPENAI_HINT}"
        )
    if engine == "openai":
        return f"**{model}** is served by an OpenAI-compatible upstream, relayed token by token."
    return f"**{model}** (engine: {engine or 'unknown'})."


def model_summary(health: Mapping[str, Any] | None) -> str:
    """One short line for the header (the full note is ``model_note``)."""
    engine = str((health or {}).get("engine") or "")
    if engine == "llama":
        return "a tiny local base model: fluent continuations, not reliable answers"
    if engine == "simulated":
        return "simulated engine: placeholder text, not a language model"
    if engine == "openai":
        return "relayed from an OpenAI-compatible upstream"
    return ""


def text_placeholder(health: Mapping[str, Any] | None) -> str:
    """The message box's placeholder: no promise the model cannot keep."""
    engine = str((health or {}).get("engine") or "")
    if engine == "llama":
        return "Message a tiny local model (fluent, often wrong)…"
    if engine == "simulated":
        return "Message the simulated engine (placeholder text)…"
    return "Write a message…"

"""The app header: title, backend, engine, model with its honest note, hub, health, ``/demo``.

Pure function. Before ``/healthz`` has answered the health pill says
"checking…" in a neutral colour: only a failed check turns it red.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from ui.present import model_note, model_summary

__all__ = ["header_html"]


def _pill(key: str, value: str, state: str = "", title: str = "") -> str:
    extra = f" ssechat-{state}" if state else ""
    tip = f' title="{html.escape(title)}"' if title else ""
    return (
        f'<span class="ssechat-pill{extra}" data-pill="{html.escape(key)}"{tip}>'
        f"<b>{html.escape(key)}</b> {html.escape(value)}</span>"
    )


def header_html(
    backend_label: str, health: Mapping[str, Any] | None, error: str | None = None
) -> str:
    """``health=None`` and ``error=None``: still checking; ``error``: the check failed."""
    pills = [_pill("backend", backend_label)]
    note = ""
    if health is not None:
        status = str(health.get("status", "unknown"))
        pills += [
            _pill("engine", str(health.get("engine", "?"))),
            _pill("model", str(health.get("model", "?")), title=model_note(health)),
            _pill("hub", str(health.get("hub", "?"))),
            _pill("health", status, "ok" if status == "ok" else "bad"),
        ]
        summary = model_summary(health)
        warning = str(health.get("note") or "")
        note = " · ".join(part for part in (summary, warning) if part)
    elif error is not None:
        pills.append(_pill("health", "unreachable", "bad"))
        note = error
    else:
        pills.append(_pill("health", "checking…", "wait"))
    note_html = f'<div class="ssechat-hnote">{html.escape(note)}</div>' if note else ""
    return (
        '<header class="ssechat-header">'
        '<div class="ssechat-brand">ssechat <span>LLM answers over Server-Sent Events</span></div>'
        f'<div class="ssechat-pills">{"".join(pills)}</div>'
        '<a class="ssechat-demo" href="demo" target="_blank" rel="noopener">'
        "EventSource demo ↗</a>"
        f"{note_html}</header>"
    )

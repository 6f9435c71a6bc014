"""Pure functions from client results to what the UI shows (HTML, tables, plot data).

No Gradio and no I/O here, so the look of metrics, errors and the Inspector
can be tested and reused by the benchmark without a browser.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

from ui.client import Answer, BackendHTTPError, ChatClientError

__all__ = [
    "ERROR_MARK",
    "EVENT_COLUMNS",
    "TIMELINE_COLUMNS",
    "error_markdown",
    "event_rows",
    "header_html",
    "history_to_messages",
    "metrics_html",
    "timeline_plot",
]

# Starts every error block we add to an assistant message; stripped again when
# the history is sent back to the model (the model never saw it, so it should not).
ERROR_MARK = "\n\n> ⚠️ "
TIMELINE_COLUMNS = ["t_ms", "tokens", "answer"]
EVENT_COLUMNS = ["answer", "conn", "id", "event", "data", "t (ms)"]


def error_markdown(exc: BaseException) -> str:
    """A readable, one-paragraph Markdown block for an error (appended to the answer)."""
    if isinstance(exc, BackendHTTPError):
        text = f"**The backend refused the request** (HTTP {exc.status_code}): {exc.server_message}"
    elif isinstance(exc, ChatClientError):
        text = f"**{_error_title(exc)}**: {exc.message}"
    else:
        text = f"**Unexpected error**: {type(exc).__name__}: {exc}"
    return ERROR_MARK + text.replace("\n", " ")


def _error_title(exc: ChatClientError) -> str:
    name = type(exc).__name__
    return {
        "BackendUnreachableError": "Backend unreachable",
        "StreamEventError": "The backend reported an error mid-answer",
        "ConnectionLostError": "Connection lost",
    }.get(name, "Error")


def _content_text(content: Any) -> str:
    """Text of a Gradio 6 message content (a string or a list of typed parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, Mapping):
        return str(content.get("text", "")) if content.get("type", "text") == "text" else ""
    if isinstance(content, Sequence):
        return "".join(_content_text(part) for part in content)
    return ""


def history_to_messages(
    history: Sequence[Mapping[str, Any]], message: str, system_prompt: str | None
) -> list[dict[str, str]]:
    """OpenAI messages from a Gradio chat history plus the new user message."""
    messages: list[dict[str, str]] = []
    if system_prompt and system_prompt.strip():
        messages.append({"role": "system", "content": system_prompt.strip()})
    for item in history:
        role = item.get("role")
        if role not in ("user", "assistant"):
            continue
        text = _content_text(item.get("content"))
        # An answer that is only an error block has lost its leading blank line.
        text = "" if text.startswith(ERROR_MARK.lstrip("\n")) else text.split(ERROR_MARK, 1)[0]
        if text:
            messages.append({"role": str(role), "content": text})
    messages.append({"role": "user", "content": message})
    return messages


def _fmt(value: float | None, unit: str, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}{unit}"


def metrics_html(answer: Answer | None, title: str = "") -> str:
    """Four stat cards: time to first token, tokens/s, tokens, duration."""
    if answer is None:
        cards = [
            ("first token", "–"),
            ("tokens/s", "–"),
            ("tokens", "–"),
            ("duration", "–"),
        ]
        note = "no answer yet"
    else:
        m = answer.metrics
        ttft = None if m.ttft_s is None else m.ttft_s * 1000
        cards = [
            ("first token", _fmt(ttft, " ms")),
            ("tokens/s", _fmt(m.tokens_per_s, "", 1)),
            ("tokens", str(m.tokens)),
            ("duration", _fmt(m.duration_s, " s", 2)),
        ]
        bits = ["streamed (SSE)" if m.streamed else "not streamed (one JSON)"]
        if answer.model:
            bits.append(answer.model)
        if m.finish_reason:
            bits.append(f"finish: {m.finish_reason}")
        if answer.cancelled:
            bits.append("stopped")
        if m.reconnects:
            bits.append(f"resumed {m.reconnects}× (Last-Event-ID)")
        note = " · ".join(bits)
    body = "".join(
        f'<div class="ssechat-card"><div class="ssechat-value">{html.escape(value)}</div>'
        f'<div class="ssechat-label">{html.escape(label)}</div></div>'
        for label, value in cards
    )
    heading = f'<div class="ssechat-title">{html.escape(title)}</div>' if title else ""
    return (
        f'<div class="ssechat-metrics">{heading}<div class="ssechat-cards">{body}</div>'
        f'<div class="ssechat-note">{html.escape(note)}</div></div>'
    )


def timeline_plot(answers: Sequence[tuple[str, Answer]]) -> dict[str, Any]:
    """Tokens received vs time (ms) for each labelled answer, as steps, for ``gr.LinePlot``.

    A streamed answer rises token by token from its first byte; a
    non-streamed one stays at zero until the whole body arrives, then jumps.

    The value is the already-serialised form ``LinePlot.postprocess`` makes of a
    DataFrame (columns, rows, datatypes, mark): a dict passes ``postprocess``
    unchanged, so it also works on ChatInterface's ``/chat`` API endpoint,
    which skips postprocessing, and needs no pandas.
    """
    rows: list[tuple[float, int, str]] = []
    for label, answer in answers:
        m = answer.metrics
        rows.append((0.0, 0, label))
        if m.streamed:
            times = m.token_times_s
            if times:
                rows.append((times[0] * 1000, 0, label))
            rows.extend((t * 1000, i, label) for i, t in enumerate(times, start=1))
            rows.append((m.duration_s * 1000, len(times), label))
        else:
            rows.append((m.duration_s * 1000, 0, label))
            rows.append((m.duration_s * 1000, m.tokens, label))
    return {
        "columns": TIMELINE_COLUMNS,
        "data": [list(row) for row in rows],
        "datatypes": {"t_ms": "quantitative", "tokens": "quantitative", "answer": "nominal"},
        "mark": "line",
    }


def event_rows(answers: Sequence[tuple[str, Answer]]) -> list[list[Any]]:
    """The Inspector table: every raw SSE event of the labelled answers."""
    return [
        [label, e.connection, e.id, e.event, e.data, round(e.t_s * 1000, 1)]
        for label, answer in answers
        for e in answer.events
    ]


def header_html(backend_label: str, health: Mapping[str, Any] | None, error: str | None) -> str:
    """The app header: title, backend URL, engine, model, hub and health."""
    if health is not None:
        status = str(health.get("status", "unknown"))
        ok = status == "ok"
        items = [
            ("backend", backend_label),
            ("engine", str(health.get("engine", "?"))),
            ("model", str(health.get("model", "?"))),
            ("hub", str(health.get("hub", "?"))),
        ]
        note = str(health.get("note") or "")
    else:
        status, ok, note = "unreachable", False, error or ""
        items = [("backend", backend_label)]
    pills = "".join(
        f'<span class="ssechat-pill"><b>{html.escape(k)}</b> {html.escape(v)}</span>'
        for k, v in items
    )
    state = "ok" if ok else "bad"
    note_html = f'<div class="ssechat-hnote">{html.escape(note)}</div>' if note else ""
    return (
        '<div class="ssechat-header">'
        '<div class="ssechat-brand">ssechat <span>LLM answers over Server-Sent Events</span></div>'
        f'<div class="ssechat-pills">{pills}'
        f'<span class="ssechat-pill ssechat-{state}"><b>health</b> {html.escape(status)}</span>'
        f"</div>{note_html}</div>"
    )

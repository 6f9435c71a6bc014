"""The numbers of an answer: stat cards (HTML) and the token-arrival timeline (plot data).

Pure functions. One token count everywhere: ``tokens`` is the number of
streamed deltas that carried text (answer, reasoning or tool-call arguments),
one per token as the engines stream them, the same number the timeline tops
out at and the Inspector lists. Only a non-streamed answer, which has no
deltas, shows the server's count (its usage), and says so.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from ui.client import Answer
from ui.gradio_ui.live import LiveAnswer
from ui.present import stopped_note

__all__ = ["DIALECT_LABELS", "TIMELINE_COLUMNS", "TOKENS_AXIS", "metrics_html", "timeline_plot"]

TIMELINE_COLUMNS = ["t_ms", "tokens", "answer"]
TOKENS_AXIS = "tokens streamed"
DIALECT_LABELS = {
    "chat": "Chat Completions",
    "responses": "Responses",
    "messages": "Messages (Anthropic)",
}


def _fmt(value: float | None, unit: str, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}{unit}"


def _ms(seconds: float | None) -> str:
    """Milliseconds, or seconds from 1 s up: a card's value fits its width either way."""
    if seconds is None:
        return "–"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    return f"{seconds * 1000:.0f} ms"


def _card(key: str, label: str, value: str, hint: str = "") -> str:
    title = f' title="{html.escape(hint)}"' if hint else ""
    return (
        f'<div class="ssechat-card" data-metric="{key}"{title}>'
        f'<div class="ssechat-value">{html.escape(value)}</div>'
        f'<div class="ssechat-label">{html.escape(label)}</div></div>'
    )


def metrics_html(live: LiveAnswer | None, title: str = "") -> str:
    """Five cards (first token, tokens/s, tokens, duration, finish) and a note line.

    While the answer streams the cards count what arrived so far; once it is
    done they describe it as it ended (stopped answers included: ``cancelled``).
    """
    heading = f'<div class="ssechat-title">{html.escape(title)}</div>' if title else ""
    if live is None:
        cards = [
            _card("ttft", "first token", "–"),
            _card("rate", "tokens/s", "–"),
            _card("tokens", TOKENS_AXIS, "–"),
            _card("duration", "duration", "–"),
            _card("finish", "finish", "–"),
        ]
        note = "no answer yet"
    else:
        cards, note = _cards(live)
    return (
        f'<div class="ssechat-metrics">{heading}<div class="ssechat-cards">{"".join(cards)}</div>'
        f'<div class="ssechat-note">{html.escape(note)}</div></div>'
    )


def _cards(live: LiveAnswer) -> tuple[list[str], str]:
    answer = live.answer
    streamed = live.streamed
    tokens_label = TOKENS_AXIS if streamed else "tokens (server)"
    tokens_hint = (
        "streamed deltas that carried text: what the timeline plots"
        if streamed
        else "completion tokens the server reported (no deltas: not streamed)"
    )
    if answer is not None:
        m = answer.metrics
        ttft = m.ttft_s
        finish = m.finish_reason or ("error" if live.error else "–")
        if live.error is not None and finish != "cancelled":
            finish = "error"
        values = (ttft, m.tokens_per_s, str(m.tokens), _fmt(m.duration_s, " s", 2), finish)
    else:
        ttft = live.first_token_s
        rate = None
        first, last = live.first_token_s, live.last_token_s
        if first is not None and last is not None and last > first:
            rate = (live.tokens - 1) / (last - first)
        finish = "error" if live.error else ("streaming…" if streamed else "waiting…")
        values = (ttft, rate, str(live.tokens), _fmt(live.elapsed_s(), " s", 1), finish)
    cards = [
        _card("ttft", "first token", _ms(values[0]), "time from request to first text"),
        _card("rate", "tokens/s", _fmt(values[1], "", 1), "arrival rate once text flows"),
        _card("tokens", tokens_label, values[2], tokens_hint),
        _card("duration", "duration", values[3]),
        _card("finish", "finish", values[4], "finish reason"),
    ]
    return cards, _note(live)


def _note(live: LiveAnswer) -> str:
    answer = live.answer
    bits = ["streamed (SSE)" if live.streamed else "not streamed (one JSON)"]
    if answer is not None:
        bits.append(DIALECT_LABELS.get(answer.dialect, answer.dialect))
        if answer.model:
            bits.append(answer.model)
        if answer.cancelled:
            bits.append(stopped_note(answer))
        if answer.metrics.reconnects:
            bits.append(f"resumed {answer.metrics.reconnects}× (Last-Event-ID)")
    if live.error is not None:
        bits.append("failed: see the message")
    return " · ".join(bits)


def timeline_plot(answers: Sequence[tuple[str, Answer]]) -> dict[str, Any]:
    """Tokens received vs time (ms) for each labelled answer, as steps, for ``gr.LinePlot``.

    A streamed answer rises token by token from its first byte; a
    non-streamed one stays at zero until the whole body arrives, then jumps.

    The value is the already-serialised form ``LinePlot.postprocess`` makes of a
    DataFrame (columns, rows, datatypes, mark): a dict passes ``postprocess``
    unchanged and needs no pandas.
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

"""The Inspector: one compact row per raw SSE event of the last answer(s), JSON on demand.

Pure functions. A row is (answer, id, event, kind, delta, ms, conn): the SSE
``id`` (what ``Last-Event-ID`` resumes after), the ``event:`` name
(``message`` when the dialect sends none), what the client found in it, the
text it carried, its arrival in ms since the request, and the connection that
brought it (0 = the first, n = the n-th resume). Each row is a ``<details>``
element: opening it shows the event's whole ``data``, indented when it is
JSON. The filter works on kind groups.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence

from ui.client import Answer, RawEvent

__all__ = ["EVENT_COLUMNS", "KIND_GROUPS", "MAX_ROWS", "filtered_events", "inspector_html"]

EVENT_COLUMNS = ("answer", "id", "event", "kind", "delta", "ms", "conn")
# Filter choice -> the RawEvent kinds it shows.
KIND_GROUPS: dict[str, frozenset[str]] = {
    "content": frozenset({"content", "refusal"}),
    "reasoning": frozenset({"reasoning"}),
    "tool call": frozenset({"tool_call"}),
    "usage": frozenset({"usage"}),
    "error": frozenset({"error"}),
    "other": frozenset({"finish", "done", "meta", "ping", ""}),
}
_KNOWN = frozenset().union(*KIND_GROUPS.values())
MAX_ROWS = 4000  # beyond this the page gets heavy; the rest are counted, not drawn


def _kinds(groups: Iterable[str] | None) -> frozenset[str] | None:
    if groups is None:
        return None  # no filter
    return frozenset().union(*(KIND_GROUPS.get(group, frozenset()) for group in groups))


def filtered_events(
    answers: Sequence[tuple[str, Answer]] | None, groups: Iterable[str] | None = None
) -> list[tuple[str, RawEvent]]:
    """The events to list, in arrival order per answer; ``groups=None`` keeps all."""
    kinds = _kinds(groups)
    return [
        (label, event)
        for label, answer in answers or ()
        for event in answer.events
        if kinds is None or (event.kind if event.kind in _KNOWN else "") in kinds
    ]


def _data(event: RawEvent) -> str:
    try:
        return json.dumps(json.loads(event.data), indent=2, ensure_ascii=False)
    except ValueError:
        return event.data


def _row(label: str, event: RawEvent) -> str:
    short = label.split(":", 1)[0]
    delta = event.text.replace("\r", "").replace("\n", "⏎")
    cells = [
        f'<span title="{html.escape(label)}">{html.escape(short)}</span>',
        f"<span>{html.escape(event.id or '–')}</span>",
        f"<span>{html.escape(event.event or 'message')}</span>",
        f'<span class="ssechat-kind">{html.escape(event.kind or "–")}</span>',
        f'<span class="ssechat-delta">{html.escape(delta)}</span>',
        f"<span>{event.t_s * 1000:.1f}</span>",
        f"<span>{event.connection}</span>",
    ]
    return (
        f'<details class="ssechat-ev" data-kind="{html.escape(event.kind or "")}">'
        f"<summary>{''.join(cells)}</summary>"
        f"<pre>{html.escape(_data(event))}</pre></details>"
    )


def inspector_html(
    answers: Sequence[tuple[str, Answer]] | None, groups: Iterable[str] | None = None
) -> str:
    """The event list (HTML), filtered by kind groups; rows open to show their data."""
    total = sum(len(answer.events) for _, answer in answers or ())
    if not total:
        return '<div class="ssechat-events-empty">No answer yet: send a message.</div>'
    events = filtered_events(answers, groups)
    head = "".join(f"<span>{name}</span>" for name in EVENT_COLUMNS)
    rows = "".join(_row(label, event) for label, event in events[:MAX_ROWS])
    shown = min(len(events), MAX_ROWS)
    summary = f"{total} events, {shown} shown" + (
        f" (the first {MAX_ROWS} of {len(events)} that match)" if len(events) > MAX_ROWS else ""
    )
    return (
        f'<div class="ssechat-events-count">{summary}. Open a row for its data.</div>'
        f'<div class="ssechat-events"><div class="ssechat-ev-head">{head}</div>{rows}</div>'
    )

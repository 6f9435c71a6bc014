"""The Compare tab: one prompt, two answers, two settings, one timeline.

Presets fill both panes' settings: streaming vs non-streaming (same model,
the default), two models, two temperatures, two dialects. The timeline plots
both answers from their own request's start, so the difference a setting
makes is where the two lines part: a streamed answer rises from its first
token, a non-streamed one is flat until the whole body lands.

An engine that generates one answer at a time (the local llama engine) would
make one pane wait for the other and count the wait as its latency; then the
panes run one after the other (``sequential``), each timed on its own.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import gradio as gr

from ui.client import Answer
from ui.gradio_ui.chat import ChatSettings
from ui.gradio_ui.link import BackendLink
from ui.gradio_ui.live import Handoff, LiveAnswer, Run, Runs, updates, whole
from ui.gradio_ui.messages import WAITING, WAITING_WHOLE, answer_messages, history_to_messages
from ui.gradio_ui.metrics import metrics_html
from ui.gradio_ui.streams import chain, coalesce, merge

__all__ = [
    "DEFAULT_PRESET",
    "MODES",
    "NON_STREAMING",
    "PRESETS",
    "STREAMING",
    "CompareHandlers",
    "pane_label",
    "preset_values",
]

STREAMING = "streaming (SSE)"
NON_STREAMING = "non-streaming (JSON)"
MODES = (STREAMING, NON_STREAMING)
STREAM_VS_WHOLE = "streaming vs non-streaming"
TWO_MODELS = "two models"
TWO_TEMPERATURES = "two temperatures"
TWO_DIALECTS = "two dialects"
PRESETS = (STREAM_VS_WHOLE, TWO_MODELS, TWO_TEMPERATURES, TWO_DIALECTS)
DEFAULT_PRESET = STREAM_VS_WHOLE
TEMPERATURE = 0.7
# Per pane: model, mode, dialect, temperature.
PaneValues = tuple[str, str, str, float]


def preset_values(
    preset: str, models: Sequence[str] | None, default_model: str | None
) -> tuple[PaneValues, PaneValues]:
    """Both panes' (model, mode, dialect, temperature) for a preset."""
    models = list(models or [])
    first = default_model or (models[0] if models else "")
    other = next((m for m in models if m != first), first)
    same = (first, STREAMING, "chat", TEMPERATURE)
    if preset == TWO_MODELS:
        return same, (other, STREAMING, "chat", TEMPERATURE)
    if preset == TWO_TEMPERATURES:
        return (first, STREAMING, "chat", 0.2), (first, STREAMING, "chat", 1.3)
    if preset == TWO_DIALECTS:
        return same, (first, STREAMING, "responses", TEMPERATURE)
    return same, (first, NON_STREAMING, "chat", TEMPERATURE)


def pane_label(name: str, model: str | None, mode: str, dialect: str | None) -> str:
    """What tells the panes apart first: legends cut long labels at the end."""
    kind = "stream" if mode != NON_STREAMING else "no stream"
    return f"{name}: {kind} · {dialect or 'chat'} · {model or 'default'}"


async def _tagged(
    pane: int, source: AsyncIterator[LiveAnswer]
) -> AsyncIterator[tuple[int, LiveAnswer]]:
    async for live in source:
        yield pane, live


class CompareHandlers:
    """A run is three chained events, as in Chat (``ui.gradio_ui.chat`` says why):

    - ``begin`` -> pane A, pane B, metrics A, metrics B, finished answers, Run, Stop
    - ``stream`` -> pane A, pane B, metrics A, metrics B
    - ``finish`` -> finished answers, Run, Stop
    """

    def __init__(self, link: BackendLink, runs: Runs, *, coalesce_s: float) -> None:
        self.link = link
        self.runs = runs
        self.coalesce_s = coalesce_s
        self._results: Handoff[list[tuple[str, Answer]]] = Handoff()

    @staticmethod
    def apply_preset(
        preset: str, models: list[str] | None, default_model: str | None
    ) -> tuple[Any, ...]:
        a, b = preset_values(preset, models, default_model)
        return (*a, *b)

    async def stop(self, request: gr.Request) -> None:
        await self.runs.stop(_session(request), "compare")

    def begin(
        self,
        prompt: str,
        sequential: bool,
        model_a: str | None,
        mode_a: str,
        dialect_a: str | None,
        model_b: str | None,
        mode_b: str,
        dialect_b: str | None,
    ) -> tuple[Any, ...]:
        if not (prompt or "").strip():
            note = [{"role": "assistant", "content": "_Type a prompt first._"}]
            return note, note, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
        panes = [(model_a, mode_a, dialect_a), (model_b, mode_b, dialect_b)]
        labels = [pane_label(n, *pane) for n, pane in zip("AB", panes, strict=True)]
        waiting = _waiting(mode_a, mode_b, sequential, first_done=False)
        return (
            *(answer_messages(LiveAnswer(), waiting=w) for w in waiting),
            *(metrics_html(None, label) for label in labels),
            [],  # clears the timeline and the Inspector
            gr.update(interactive=False),
            gr.update(interactive=True),
        )

    async def stream(
        self,
        prompt: str,
        system_prompt: str | None,
        top_p: float,
        sequential: bool,
        model_a: str | None,
        mode_a: str,
        dialect_a: str | None,
        temperature_a: float,
        max_tokens_a: float,
        model_b: str | None,
        mode_b: str,
        dialect_b: str | None,
        temperature_b: float,
        max_tokens_b: float,
        request: gr.Request,
    ) -> AsyncGenerator[tuple[Any, ...], None]:
        if not (prompt or "").strip():
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        messages = history_to_messages([], prompt, system_prompt)
        panes = [
            (model_a, mode_a, dialect_a, temperature_a, max_tokens_a),
            (model_b, mode_b, dialect_b, temperature_b, max_tokens_b),
        ]
        labels = [pane_label(n, p[0], p[1], p[2]) for n, p in zip("AB", panes, strict=True)]
        lives = [LiveAnswer(streamed=p[1] != NON_STREAMING) for p in panes]
        session = _session(request)
        with self.runs.start(session, "compare") as run:
            sources = [self._pane(i, pane, messages, top_p, run) for i, pane in enumerate(panes)]
            combined = chain(*sources) if sequential else merge(*sources)
            async for batch in coalesce(combined, self.coalesce_s):
                for pane, live in batch:
                    lives[pane] = live
                waiting = _waiting(mode_a, mode_b, sequential, first_done=lives[0].done)
                yield (
                    *(
                        answer_messages(live, waiting=w)
                        for live, w in zip(lives, waiting, strict=True)
                    ),
                    *(metrics_html(live, label) for live, label in zip(lives, labels, strict=True)),
                )
        finished = [
            (labels[i], live.answer) for i, live in enumerate(lives) if live.answer is not None
        ]
        self._results.put(session, finished)

    def finish(self, request: gr.Request) -> tuple[Any, ...]:
        finished = self._results.take(_session(request))
        return (
            finished if finished is not None else gr.skip(),
            gr.update(interactive=True),
            gr.update(interactive=False),
        )

    def _pane(
        self,
        index: int,
        pane: tuple[str | None, str, str | None, float, float],
        messages: list[dict[str, str]],
        top_p: float,
        run: Run,
    ) -> AsyncIterator[tuple[int, LiveAnswer]]:
        model, mode, dialect, temperature, max_tokens = pane
        settings = ChatSettings(model, dialect, None, temperature, top_p, max_tokens)
        request = settings.request(messages)
        client = self.link.client()
        if mode == NON_STREAMING:
            return _tagged(index, whole(client, request, run))
        return _tagged(index, updates(client, request, run))


def _waiting(mode_a: str, mode_b: str, sequential: bool, *, first_done: bool) -> list[str]:
    waiting = [WAITING if mode != NON_STREAMING else WAITING_WHOLE for mode in (mode_a, mode_b)]
    if sequential and not first_done:
        waiting[1] = "_…waits for A (this engine generates one answer at a time)…_"
    return waiting


def _session(request: gr.Request | None) -> str | None:
    return None if request is None else request.session_hash

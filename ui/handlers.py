"""The UI's event handlers: async generators that stream client results into components.

Every handler talks to the backend over HTTP through ``ui.client`` (never a
Python call into ``backend``), and pushes updates through ``coalesce`` so the
browser gets at most one update per ``coalesce_s`` however fast tokens come.
Errors never escape as Gradio exceptions: they become readable text in the
answer, and the app keeps working.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.client import (
    Answer,
    ChatClient,
    ChatClientError,
    ChatRequest,
    ConnectionLostError,
    Delta,
    StreamEventError,
    make_http_client,
)
from ui.render import (
    error_markdown,
    event_rows,
    header_html,
    history_to_messages,
    metrics_html,
    timeline_plot,
)
from ui.streams import coalesce, merge

__all__ = ["STREAMING", "BackendLink", "Handlers"]

logger = logging.getLogger(__name__)

STREAMING = "streaming (SSE)"
NON_STREAMING = "non-streaming (JSON)"
MODES = (STREAMING, NON_STREAMING)
# Browser work per update grows with the chat: Gradio clones the whole chat value and the
# Chatbot re-lays it out on every update (measured in bench/ui_latency.py: ~30 ms of browser
# CPU per update for a short chat, several times that at 100+ messages with software
# rendering). So the coalescing interval grows with the history, by one base interval per
# this many messages, and a long chat gets fewer, larger updates instead of a growing backlog.
HISTORY_SCALE = 50
WAITING = "_…waiting for the first token…_"
WAITING_WHOLE = "_…waiting for the whole answer (no streaming)…_"


class BackendLink:
    """The UI's connection to the API: one ``ChatClient``, made on first use.

    Made lazily so the ``httpx.AsyncClient`` belongs to the server's event
    loop (Gradio runs async handlers there), not to whatever loop imported us.
    """

    def __init__(
        self,
        base_url: str,
        *,
        label: str,
        api_key: str | None = None,
        read_timeout_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.label = label
        self._api_key = api_key
        self._read_timeout_s = read_timeout_s
        self._client: ChatClient | None = None

    def client(self) -> ChatClient:
        if self._client is None:
            http = make_http_client(self.base_url, read_timeout_s=self._read_timeout_s)
            self._client = ChatClient(
                http, api_key=self._api_key, read_timeout_s=self._read_timeout_s
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.http.aclose()


@dataclass(frozen=True, slots=True)
class _PaneError:
    pane: int
    error: ChatClientError


class Handlers:
    """Bound to one backend link; its methods are the Gradio event functions."""

    def __init__(self, link: BackendLink, *, coalesce_s: float = 0.04) -> None:
        self.link = link
        self.coalesce_s = coalesce_s

    # ------------------------------------------------------------------ header / settings

    async def load(self) -> tuple[str, Any, Any, Any]:
        """Header HTML and the three model dropdowns (sidebar, Compare A, Compare B)."""
        client = self.link.client()
        try:
            health = await client.health()
            models = await client.models()
        except ChatClientError as exc:
            logger.warning("backend info unavailable: %s", exc.message)
            header = header_html(self.link.label, None, exc.message)
            return header, gr.skip(), gr.skip(), gr.skip()
        default = str(health.get("model") or (models[0] if models else ""))
        choices = models or ([default] if default else [])
        second = choices[1] if len(choices) > 1 else default
        header = header_html(self.link.label, health, None)
        return (
            header,
            gr.update(choices=choices, value=default),
            gr.update(choices=choices, value=default),
            gr.update(choices=choices, value=second),
        )

    # ------------------------------------------------------------------ Chat

    async def chat(
        self,
        message: str,
        history: list[dict[str, Any]],
        model: str | None,
        system_prompt: str,
        temperature: float,
        top_p: float,
        max_tokens: float,
    ) -> AsyncGenerator[tuple[str, Any, Any], None]:
        """ChatInterface fn: yields (accumulated text, metrics HTML, finished answers).

        The finished answers go to a ``gr.State`` whose change event draws the
        timeline and the Inspector (see ``show_answers``).
        """
        request = ChatRequest(
            messages=history_to_messages(history, message, system_prompt),
            model=model or None,
            temperature=float(temperature),
            top_p=float(top_p),
            max_tokens=int(max_tokens),
        )
        text = ""
        answer: Answer | None = None
        interval = self.coalesce_s * (1 + len(history) / HISTORY_SCALE)
        try:
            async with self.link.client().stream_chat(request) as stream:
                async for batch in coalesce(stream, interval):
                    for item in batch:
                        if isinstance(item, Delta):
                            text += item.text
                        else:
                            answer = item
                    if answer is None:
                        yield text, gr.skip(), gr.skip()
        except ChatClientError as exc:
            partial = (
                exc.answer if isinstance(exc, StreamEventError | ConnectionLostError) else None
            )
            yield _with_error(text, exc), *self._answer_outputs(partial)
            return
        yield text or "_(empty answer)_", *self._answer_outputs(answer)

    def _answer_outputs(self, answer: Answer | None) -> tuple[str, Any]:
        if answer is None:
            return metrics_html(None), gr.skip()
        return metrics_html(answer), [("chat", answer)]

    @staticmethod
    def show_answers(answers: list[tuple[str, Answer]] | None) -> tuple[Any, list[list[Any]]]:
        """Timeline plot and Inspector rows for the labelled answers (a plain function).

        Why not yield these from the streaming generators: Gradio sends a
        generator's later outputs as JSON diffs against its previous output, and
        for these nested values (after ``gr.skip()`` chunks) the browser sometimes
        ended up with a plot missing a series. A non-generator event sends whole values.
        """
        if answers is None:
            return gr.skip(), gr.skip()
        if not answers:
            return None, []  # a new run: clear
        return timeline_plot(answers), event_rows(answers)

    # ------------------------------------------------------------------ Compare

    async def compare(
        self,
        prompt: str,
        system_prompt: str,
        top_p: float,
        model_a: str | None,
        mode_a: str,
        temperature_a: float,
        max_tokens_a: float,
        model_b: str | None,
        mode_b: str,
        temperature_b: float,
        max_tokens_b: float,
    ) -> AsyncGenerator[tuple[Any, ...], None]:
        """Two answers at once; yields (pane A, pane B, metrics A, metrics B, finished answers)."""
        if not prompt or not prompt.strip():
            yield ("_Type a prompt first._", "_Type a prompt first._", *([gr.skip()] * 3))
            return
        messages = history_to_messages([], prompt, system_prompt)
        panes = [
            (model_a, mode_a, temperature_a, max_tokens_a),
            (model_b, mode_b, temperature_b, max_tokens_b),
        ]
        texts = ["", ""]
        answers: list[Answer | None] = [None, None]
        errors: list[str] = ["", ""]
        labels = [self._pane_label("A", model_a, mode_a), self._pane_label("B", model_b, mode_b)]
        sources = [
            self._pane(
                i,
                ChatRequest(
                    messages=messages,
                    model=model or None,
                    temperature=float(temperature),
                    top_p=float(top_p),
                    max_tokens=int(max_tokens),
                ),
                streaming=mode != NON_STREAMING,
            )
            for i, (model, mode, temperature, max_tokens) in enumerate(panes)
        ]
        waiting = [WAITING if mode != NON_STREAMING else WAITING_WHOLE for mode in (mode_a, mode_b)]
        # An empty list clears the plot: gr.LinePlot keeps the series (colour domain) of its
        # first render when later data adds one, so each run draws once, with both answers.
        yield (
            waiting[0],
            waiting[1],
            metrics_html(None, labels[0]),
            metrics_html(None, labels[1]),
            [],
        )
        shown = list(waiting)
        async for batch in coalesce(merge(*sources), self.coalesce_s):
            for pane, item in batch:
                if isinstance(item, Delta):
                    texts[pane] += item.text
                elif isinstance(item, Answer):
                    answers[pane] = item
                    texts[pane] = item.text
                else:
                    errors[pane] = _with_error("", item.error)
                    answers[pane] = getattr(item.error, "answer", None)
            shown = [(texts[i] + errors[i]) or waiting[i] for i in range(2)]
            done = [answers[i] is not None or bool(errors[i]) for i in range(2)]
            yield (
                shown[0],
                shown[1],
                metrics_html(answers[0], labels[0]) if done[0] else gr.skip(),
                metrics_html(answers[1], labels[1]) if done[1] else gr.skip(),
                gr.skip(),
            )
        finished = [(labels[i], a) for i, a in enumerate(answers) if a is not None]
        yield shown[0], shown[1], gr.skip(), gr.skip(), finished

    @staticmethod
    def _pane_label(name: str, model: str | None, mode: str) -> str:
        kind = "stream" if mode != NON_STREAMING else "no stream"
        return f"{name}: {model or 'default'} ({kind})"

    async def _pane(
        self, pane: int, request: ChatRequest, *, streaming: bool
    ) -> AsyncGenerator[tuple[int, Delta | Answer | _PaneError], None]:
        client = self.link.client()
        try:
            if streaming:
                async with client.stream_chat(request) as stream:
                    async for item in stream:
                        yield pane, item
            else:
                yield pane, await client.complete(request)
        except ChatClientError as exc:
            yield pane, _PaneError(pane, exc)


def _with_error(text: str, exc: BaseException) -> str:
    return (text + error_markdown(exc)).lstrip("\n")

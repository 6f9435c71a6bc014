"""The UI's event functions that are neither Chat nor Compare: backend info, timelines,
the Inspector, saved chats. ``Handlers`` also owns the Chat and Compare handlers.

Every handler talks to the backend over HTTP through ``ui.client`` (never a
Python call into ``backend``). Errors never escape as Gradio exceptions: they
become readable text, and the app keeps working.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import gradio as gr

from ui.client import Answer, ChatClientError
from ui.gradio_ui.chat import ChatHandlers
from ui.gradio_ui.compare import DEFAULT_PRESET, CompareHandlers, preset_values
from ui.gradio_ui.header import header_html
from ui.gradio_ui.history import chat_titles, open_chat, save_chat
from ui.gradio_ui.inspector import inspector_html
from ui.gradio_ui.link import BackendLink
from ui.gradio_ui.live import Runs
from ui.gradio_ui.metrics import timeline_plot
from ui.present import model_note, text_placeholder

__all__ = ["Handlers"]

logger = logging.getLogger(__name__)

Answers = list[tuple[str, Answer]]
History = list[dict[str, Any]]
Saved = list[dict[str, Any]]


class Handlers:
    """Bound to one backend link; its methods (and ``chat``'s, ``compare``'s) are the
    Gradio event functions."""

    def __init__(self, link: BackendLink, *, coalesce_s: float = 0.04) -> None:
        self.link = link
        self.runs = Runs()
        self.chat = ChatHandlers(link, self.runs, coalesce_s=coalesce_s)
        self.compare = CompareHandlers(link, self.runs, coalesce_s=coalesce_s)

    # ------------------------------------------------------------------ backend info

    async def load(self, preset: str | None) -> tuple[Any, ...]:
        """Header, the model list everywhere, the honest model note and placeholder, and
        Compare's panes set by its preset.

        Outputs: header, sidebar model, models (state), conversation (placeholder),
        message box (placeholder), Compare "one after the other", then per pane
        model, mode, dialect, temperature (A, then B).
        """
        client = self.link.client()
        try:
            health = await client.health()
            models = await client.models()
        except ChatClientError as exc:
            logger.warning("backend info unavailable: %s", exc.message)
            return (header_html(self.link.label, None, exc.message), *([gr.skip()] * 13))
        default = str(health.get("model") or (models[0] if models else ""))
        choices = models or ([default] if default else [])
        a, b = preset_values(preset or DEFAULT_PRESET, choices, default)
        model_update = gr.update(choices=choices, value=default)
        pane_models = [gr.update(choices=choices, value=pane[0]) for pane in (a, b)]
        return (
            header_html(self.link.label, health),
            model_update,
            choices,
            gr.update(placeholder=model_note(health)),
            gr.update(placeholder=text_placeholder(health)),
            health.get("engine") == "llama",  # one generation at a time: run panes in turn
            pane_models[0],
            *a[1:],
            pane_models[1],
            *b[1:],
        )

    # ------------------------------------------------------------------ timelines, Inspector

    @staticmethod
    def show_answers(answers: Answers | None, kinds: list[str] | None) -> tuple[Any, Any, str]:
        """Timeline, the Inspector's answers and its rows (the kind filter kept).

        A plain function on a ``gr.State`` change, not yielded by the streaming
        generators: Gradio sends a generator's later outputs as JSON diffs, and
        for these nested values the browser sometimes ended up with a plot
        missing a series. A non-generator event sends whole values.
        """
        if answers is None:
            return gr.skip(), gr.skip(), gr.skip()
        if not answers:
            return None, [], inspector_html(None)  # a new answer: clear
        return timeline_plot(answers), answers, inspector_html(answers, kinds)

    @staticmethod
    def filter_events(answers: Answers | None, kinds: list[str] | None) -> str:
        return inspector_html(answers, kinds)

    # ------------------------------------------------------------------ saved chats
    # The browser keeps them (``gr.BrowserState``, written as an output only); the
    # server works on a per-session copy in a ``gr.State``, read once per page load
    # (see ``ui.gradio_ui.layout`` for why the BrowserState is never an input).

    @staticmethod
    def import_saved(transfer: str | None) -> tuple[Saved, Any, str]:
        """The saved chats the page found in the browser (JSON), into the session.

        Outputs: saved chats (state), the sidebar list, the emptied transfer box.
        """
        try:
            loaded = json.loads(transfer or "[]")
        except ValueError:
            loaded = []
        saved = (
            [
                entry
                for entry in loaded
                if isinstance(entry, dict) and isinstance(entry.get("messages"), list)
            ]
            if isinstance(loaded, list)
            else []
        )
        return saved, gr.update(samples=chat_titles(saved)), ""

    @staticmethod
    def save_chat(
        history: History | None, index: int | None, saved: Saved | None
    ) -> tuple[int | None, Saved, Saved, Any]:
        """Outputs: open chat's index, saved chats (state), the browser's copy, the list."""
        index, saved = save_chat(history, index, saved)
        return index, saved, saved, gr.update(samples=chat_titles(saved))

    @staticmethod
    def open_chat(saved: Saved | None, selected: int) -> tuple[Any, ...]:
        """Outputs: open chat's index, history, conversation, live answer."""
        index, history = open_chat(saved, int(selected))
        return index, history, history, []

    @staticmethod
    def new_chat() -> tuple[Any, ...]:
        """Outputs: open chat's index, history, conversation, live answer."""
        return None, [], [], []

    @staticmethod
    def delete_chat(index: int | None, saved: Saved | None) -> tuple[Any, ...]:
        """The conversation's clear button: this chat is gone, here and in the browser.

        Outputs: open chat's index, history, conversation, live answer, saved chats
        (state), the browser's copy, the list.
        """
        _, saved = save_chat([], index, saved)
        return (
            None,
            [],
            [],
            [],
            saved,
            saved,
            gr.update(samples=chat_titles(saved)),
        )

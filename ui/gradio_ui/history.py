"""Saved chats, kept in the browser (``gr.BrowserState``): save, list, open, start anew.

Plain functions on plain values: a saved chat is ``{"title", "messages"}``,
newest first; the open chat's position in that list is kept in a ``gr.State``
(``None`` for a chat not saved yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ui.gradio_ui.messages import history_to_messages

__all__ = ["MAX_SAVED", "chat_title", "chat_titles", "open_chat", "save_chat"]

MAX_SAVED = 50  # localStorage is small; the oldest chats go first
TITLE_CHARS = 48

Saved = list[dict[str, Any]]


def chat_title(history: Sequence[Mapping[str, Any]]) -> str:
    """The first user message, cut to one short line."""
    for message in history_to_messages(history, "", None):
        if message["role"] == "user" and message["content"].strip():
            line = " ".join(message["content"].split())
            return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"
    return "(empty chat)"


def save_chat(
    history: Sequence[Mapping[str, Any]] | None, index: int | None, saved: Saved | None
) -> tuple[int | None, Saved]:
    """Store the open chat (new ones go first); an emptied chat is dropped."""
    saved = list(saved or [])
    if index is not None and not 0 <= index < len(saved):
        index = None
    if not history:
        if index is not None:
            saved.pop(index)
        return None, saved
    entry = {"title": chat_title(history), "messages": list(history)}
    if index is None:
        saved.insert(0, entry)
        del saved[MAX_SAVED:]
        return 0, saved
    saved[index] = entry
    return index, saved


def chat_titles(saved: Saved | None) -> list[list[str]]:
    """Rows for the sidebar's list of saved chats."""
    return [[str(entry.get("title") or "(untitled)")] for entry in saved or []]


def open_chat(saved: Saved | None, index: int) -> tuple[int | None, list[dict[str, Any]]]:
    saved = saved or []
    if not 0 <= index < len(saved):
        return None, []
    return index, list(saved[index].get("messages") or [])

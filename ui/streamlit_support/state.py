"""What one Streamlit session remembers between reruns, and the text derived from it.

No Streamlit import here: these are plain objects kept in ``st.session_state``
under one key. The page fetches the ``ChatState`` once per run and then only
mutates its attributes, because every ``st.session_state`` access is a point
where Streamlit may raise its Stop or rerun exception, and the clean-up after
an interruption (send the cancel, keep the partial answer) must not hit one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from ui.client import Answer

__all__ = ["ChatMessage", "ChatState", "to_messages"]


@dataclass
class ChatMessage:
    role: str  # "user" | "assistant"
    content: str
    note: str | None = None  # shown under an answer: stopped, resumed, error
    error: str | None = None


@dataclass
class ChatState:
    messages: list[ChatMessage] = field(default_factory=list)
    # Set while an answer streams, cleared once the stream ended or its cancel was confirmed;
    # a run that finds it set was interrupted without clean-up and cancels it then.
    active_stream_id: str | None = None
    last: Answer | None = None  # the last answer, for the metrics
    models: tuple[str, ...] = ()
    default_model: str | None = None
    backend_note: str | None = None  # engine and model as the backend reports them
    # Cleared while a run streams, set when its clean-up ended: a rerun that starts in a new
    # script thread while the interrupted one still unwinds waits for it.
    idle: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.idle.set()


def to_messages(
    history: Sequence[ChatMessage], prompt: str, system_prompt: str | None
) -> list[dict[str, str]]:
    """OpenAI messages: the system prompt, the history's non-empty turns, the new prompt."""
    messages: list[dict[str, str]] = []
    if system_prompt and system_prompt.strip():
        messages.append({"role": "system", "content": system_prompt.strip()})
    messages.extend(
        {"role": message.role, "content": message.content} for message in history if message.content
    )
    messages.append({"role": "user", "content": prompt})
    return messages

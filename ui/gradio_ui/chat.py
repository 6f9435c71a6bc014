"""The Chat tab's event functions: send, retry, edit, undo, Stop, and the ``/chat`` API.

The browser's cost per streamed update must not grow with the chat, so:

- The answer streams into its own small Chatbot (``live``), not into the
  conversation: Gradio's browser side re-renders a Chatbot's every message on
  each update of its value. The conversation is written twice per answer (the
  question, then the finished answer, moved over from ``live``).
- The conversation is never an event *input*: the history is kept on the
  server in a ``gr.State`` (the Chatbot only shows it). Gradio's browser side
  keeps the inputs of every finished event in its loading-status table and
  deep-copies each of them on every later status message; with the Chatbot
  among them, a 200-message chat was copied on every token batch. (See
  ``ui.gradio_ui.layout`` for the outputs' side of the same problem.)
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from ui.client import DIALECT_NAMES, ChatRequest, DialectName
from ui.gradio_ui.link import BackendLink
from ui.gradio_ui.live import Handoff, LiveAnswer, Runs, updates
from ui.gradio_ui.messages import (
    answer_messages,
    answer_text,
    history_to_messages,
    user_message,
)
from ui.gradio_ui.metrics import metrics_html
from ui.gradio_ui.streams import coalesce

__all__ = ["ChatHandlers", "ChatSettings"]

History = list[dict[str, Any]]
# The metric cards change every update but nobody reads them that fast, and each
# redraw is browser work: while streaming they are redrawn at most this often.
METRICS_EVERY_S = 0.25
Turn = dict[str, Any]  # {"history": the conversation before the question, "message": it}
_DIALECTS: dict[str, DialectName] = {name: name for name in DIALECT_NAMES}


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """The sidebar's values, in the order the events pass them."""

    model: str | None
    dialect: str | None
    system_prompt: str | None
    temperature: float
    top_p: float
    max_tokens: float

    def request(self, messages: Sequence[Mapping[str, str]]) -> ChatRequest:
        return ChatRequest(
            messages=messages,
            model=self.model or None,
            temperature=float(self.temperature),
            top_p=float(self.top_p),
            max_tokens=int(self.max_tokens),
            dialect=_DIALECTS.get(self.dialect or "", "chat"),
        )


class Throttled:
    """The last value again (which Gradio sends as no change) until ``every_s`` passed."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._at = float("-inf")
        self._value = ""

    def get(self, make: Callable[[], str]) -> str:
        now = time.perf_counter()
        if now - self._at >= self._every_s:
            self._at, self._value = now, make()
        return self._value


def _session(request: gr.Request | None) -> str | None:
    return None if request is None else request.session_hash


class ChatHandlers:
    """One answer is three chained events: a *begin* (``send``, ``retry``, ``edit``,
    ``example``) puts the question in the conversation, ``stream`` draws the answer
    as it arrives, ``finish`` moves it into the conversation.

    Why three: ``stream``'s outputs are only what changes on every update (the live
    answer and the metrics); an output left unchanged with ``gr.skip()`` still costs
    Gradio a component rebuild per update on the server.
    """

    # begin -> turn, history, conversation, live answer, message box, metrics,
    #          finished answers, Send, Stop
    # stream -> live answer, metrics
    # finish -> turn, history, conversation, live answer, metrics, finished answers, Send, Stop

    def __init__(self, link: BackendLink, runs: Runs, *, coalesce_s: float) -> None:
        self.link = link
        self.runs = runs
        self.coalesce_s = coalesce_s
        self._answers: Handoff[LiveAnswer] = Handoff()

    # ---------------------------------------------------------------- begin

    # A begin with an answer still in progress (``turn`` set: Enter pressed again while
    # streaming) changes nothing.

    def send(self, turn: Turn | None, message: str, history: History | None) -> tuple[Any, ...]:
        return self._begin(turn, list(history or []), message)

    def retry(
        self, turn: Turn | None, history: History | None, data: gr.RetryData
    ) -> tuple[Any, ...]:
        """Drop the last answer and ask its question again."""
        kept, message = _before_last_question(list(history or []))
        return self._begin(turn, kept, message)

    def edit(
        self, turn: Turn | None, history: History | None, data: gr.EditData
    ) -> tuple[Any, ...]:
        """An edited question: everything after it goes, and it is asked again."""
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        return self._begin(turn, list(history or [])[: int(index)], _text(data.value))

    def example(
        self, turn: Turn | None, history: History | None, data: gr.SelectData
    ) -> tuple[Any, ...]:
        value = data.value
        text = str(value.get("text", "")) if isinstance(value, dict) else str(value)
        return self._begin(turn, list(history or []), text)

    @staticmethod
    def _begin(turn: Turn | None, history: History, message: str) -> tuple[Any, ...]:
        if turn is not None or not message.strip():
            # Nothing to start: ``stream`` and ``finish`` see the same turn and do nothing.
            return (turn, *(gr.skip() for _ in range(8)))
        conversation = [*history, user_message(message)]
        return (
            {"history": history, "message": message},
            conversation,
            conversation,
            answer_messages(LiveAnswer()),
            "",
            metrics_html(LiveAnswer()),
            [],  # clears the timeline and the Inspector: they will show this answer
            gr.update(interactive=False),
            gr.update(interactive=True),
        )

    # ---------------------------------------------------------------- stream, finish

    async def stream(
        self,
        turn: Turn | None,
        model: str | None,
        dialect: str | None,
        system_prompt: str | None,
        temperature: float,
        top_p: float,
        max_tokens: float,
        request: gr.Request,
    ) -> AsyncGenerator[tuple[Any, str], None]:
        session = _session(request)
        if turn is None or self.runs.active(session, "chat"):
            yield gr.skip(), gr.skip()  # nothing began, or this answer is already streaming
            return
        settings = ChatSettings(model, dialect, system_prompt, temperature, top_p, max_tokens)
        messages = history_to_messages(turn["history"], turn["message"], system_prompt)
        live = LiveAnswer()
        metrics = Throttled(METRICS_EVERY_S)
        with self.runs.start(session, "chat") as run:
            source = updates(self.link.client(), settings.request(messages), run)
            async for batch in coalesce(source, self.coalesce_s):
                live = batch[-1]
                if not live.done:
                    yield answer_messages(live), metrics.get(partial(metrics_html, live))
        self._answers.put(session, live)
        yield answer_messages(live), metrics_html(live)

    def finish(self, turn: Turn | None, request: gr.Request) -> tuple[Any, ...]:
        live = self._answers.take(_session(request))
        if turn is None or live is None:
            return (turn, *(gr.skip() for _ in range(7)))
        finished = [*turn["history"], user_message(turn["message"]), *answer_messages(live)]
        return (
            None,
            finished,
            finished,
            [],
            metrics_html(live),
            [("chat", live.answer)] if live.answer is not None else [],
            gr.update(interactive=True),
            gr.update(interactive=False),
        )

    # ---------------------------------------------------------------- undo, Stop, API

    @staticmethod
    def undo(history: History | None, data: gr.UndoData) -> tuple[History, History, str]:
        """Drop the last question and its answer; the question goes back into the box.

        Outputs: history, conversation, message box.
        """
        kept, message = _before_last_question(list(history or []))
        return kept, kept, message

    async def stop(self, request: gr.Request) -> None:
        """Stop this session's answer: the stream ends, the answer is drawn as stopped."""
        await self.runs.stop(_session(request), "chat")

    async def api_chat(
        self,
        message: str,
        model: str = "",
        system_prompt: str = "",
        temperature: float = 0.7,
        top_p: float = 1.0,
        max_tokens: int = 256,
        dialect: str = "chat",
    ) -> AsyncGenerator[tuple[str, str], None]:
        """``/chat`` for API clients (gradio_client): yields (answer so far, metrics HTML).

        The same client, loop and text as the Chat tab, without its components.
        """
        settings = ChatSettings(model, dialect, system_prompt, temperature, top_p, max_tokens)
        chat_request = settings.request(history_to_messages([], message, system_prompt))
        with self.runs.start(None, "api") as run:
            source = updates(self.link.client(), chat_request, run)
            async for batch in coalesce(source, self.coalesce_s):
                live = batch[-1]
                yield answer_text(live, waiting=""), metrics_html(live)


def _text(value: Any) -> str:
    """An edited message's text (a string, or Gradio's list of typed parts)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(str(part.get("text", "")) for part in value if isinstance(part, dict))
    return str(value)


def _before_last_question(history: History) -> tuple[History, str]:
    """The history before the last user message, and that message's text."""
    end = len(history)
    while end and history[end - 1].get("role") != "user":
        end -= 1
    if not end:
        return history, ""
    start = end - 1
    while start and history[start - 1].get("role") == "user":
        start -= 1
    asked = history_to_messages(history[start:end], "", None)[:-1]
    return history[:start], "\n".join(m["content"] for m in asked)

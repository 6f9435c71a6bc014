"""The components of the three tabs (Chat, Compare, Inspector), built in place.

Arrangement only: ``ui.gradio_ui.layout`` calls these inside its ``gr.Tab``
blocks and wires the events. Element ids are what the CSS, the browser tests
and the benchmark address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.gradio_ui.compare import DEFAULT_PRESET, MODES, NON_STREAMING, PRESETS, STREAMING
from ui.gradio_ui.inspector import KIND_GROUPS, inspector_html
from ui.gradio_ui.metrics import DIALECT_LABELS, TOKENS_AXIS, metrics_html

__all__ = [
    "DIALECT_CHOICES",
    "EXAMPLES",
    "ChatTab",
    "ComparePane",
    "CompareTab",
    "InspectorTab",
    "chat_tab",
    "compare_tab",
    "inspector_tab",
    "timeline",
]

EXAMPLES = [
    "Explain Server-Sent Events in a few sentences.",
    "Why can a dropped stream resume without re-running the model?",
    "Write a haiku about tokens arriving one by one.",
]
DIALECT_CHOICES = [(label, name) for name, label in DIALECT_LABELS.items()]


def timeline(elem_id: str, title: str, *, height: int = 230, legend: bool = True) -> gr.LinePlot:
    """Tokens over time; ``legend`` (one line per answer) where there is more than one."""
    return gr.LinePlot(
        x="t_ms",
        y="tokens",
        color="answer" if legend else None,
        x_title="time since request (ms)",
        y_title=TOKENS_AXIS,
        elem_id=elem_id,
        label=title,
        show_label=True,
        height=height,
    )


@dataclass
class ChatTab:
    conversation: gr.Chatbot
    live: gr.Chatbot
    message: gr.Textbox
    send: gr.Button
    stop: gr.Button
    metrics: gr.HTML
    timeline: gr.LinePlot


def chat_tab() -> ChatTab:
    with gr.Row(elem_id="chat-row", equal_height=False):
        with gr.Column(scale=3, min_width=340, elem_id="chat-col"):
            conversation = gr.Chatbot(
                label="Conversation",
                show_label=False,
                elem_id="chat-bot",
                editable="user",
                buttons=["copy", "copy_all"],
                placeholder="Connecting to the backend…",
                examples=[{"text": text} for text in EXAMPLES],
                height="100%",
                autoscroll=True,
            )
            # The answer being written; moved into the conversation once it ends. Always
            # mounted (mounting a Chatbot per answer delayed its first token); hidden by
            # the CSS while empty.
            live = gr.Chatbot(
                label="Answer in progress",
                show_label=False,
                elem_id="chat-live",
                height="auto",
                buttons=[],
                autoscroll=True,
            )
            with gr.Row(elem_id="chat-input-row", equal_height=True):
                message = gr.Textbox(
                    label="Message",
                    show_label=False,
                    placeholder="Write a message…",
                    elem_id="chat-input",
                    lines=1,
                    max_lines=6,
                    scale=8,
                    autofocus=True,
                )
                send = gr.Button(
                    "Send", variant="primary", elem_id="chat-send", scale=0, min_width=64
                )
                stop = gr.Button(
                    "Stop",
                    variant="stop",
                    elem_id="chat-stop",
                    scale=0,
                    min_width=64,
                    interactive=False,
                )
        with gr.Column(scale=2, min_width=300, elem_id="chat-side"):
            metrics = gr.HTML(metrics_html(None, "Last answer"), elem_id="chat-metrics")
            plot = timeline("chat-timeline", "Token arrival", legend=False)
    return ChatTab(conversation, live, message, send, stop, metrics, plot)


@dataclass
class ComparePane:
    model: gr.Dropdown
    mode: gr.Dropdown
    dialect: gr.Dropdown
    temperature: gr.Number
    max_tokens: gr.Number
    answer: gr.Chatbot
    metrics: gr.HTML

    def settings(self) -> list[Any]:
        return [self.model, self.mode, self.dialect, self.temperature, self.max_tokens]


@dataclass
class CompareTab:
    preset: gr.Radio
    prompt: gr.Textbox
    run: gr.Button
    stop: gr.Button
    sequential: gr.Checkbox
    panes: tuple[ComparePane, ComparePane]
    timeline: gr.LinePlot


def _pane(name: str, mode: str) -> ComparePane:
    lower = name.lower()
    with gr.Column(min_width=340, elem_id=f"compare-col-{lower}", elem_classes=["ssechat-pane"]):
        with gr.Accordion(f"{name}: settings", open=False, elem_id=f"compare-settings-{lower}"):
            with gr.Row(elem_classes=["ssechat-pane-settings"]):
                model = gr.Dropdown(
                    label=f"{name}: model",
                    choices=[""],
                    value="",
                    allow_custom_value=True,
                    min_width=150,
                )
                mode_box = gr.Dropdown(
                    label=f"{name}: mode", choices=list(MODES), value=mode, min_width=150
                )
                dialect = gr.Dropdown(
                    label=f"{name}: dialect", choices=DIALECT_CHOICES, value="chat", min_width=150
                )
            with gr.Row(elem_classes=["ssechat-pane-settings"]):
                temperature = gr.Number(
                    label=f"{name}: temperature",
                    value=0.7,
                    minimum=0,
                    maximum=2,
                    step=0.1,
                    min_width=120,
                )
                max_tokens = gr.Number(
                    label=f"{name}: max tokens",
                    value=128,
                    minimum=1,
                    maximum=4096,
                    step=1,
                    precision=0,
                    min_width=120,
                )
        answer = gr.Chatbot(
            label=f"Answer {name}",
            show_label=False,
            elem_id=f"compare-pane-{lower}",
            height=200,
            buttons=["copy"],
            placeholder="_The answer appears here._",
        )
        metrics = gr.HTML(metrics_html(None, name), elem_id=f"compare-metrics-{lower}")
    return ComparePane(model, mode_box, dialect, temperature, max_tokens, answer, metrics)


def compare_tab() -> CompareTab:
    preset = gr.Radio(
        list(PRESETS),
        value=DEFAULT_PRESET,
        label="Preset",
        show_label=False,
        elem_id="compare-preset",
    )
    with gr.Row(elem_id="compare-prompt-row", equal_height=True):
        prompt = gr.Textbox(
            value=EXAMPLES[0],
            label="Prompt for both panes",
            show_label=False,
            placeholder="Prompt for both panes",
            scale=6,
            elem_id="compare-prompt",
        )
        run = gr.Button(
            "Run both", variant="primary", scale=0, min_width=120, elem_id="compare-run"
        )
        stop = gr.Button(
            "Stop", variant="stop", scale=0, min_width=72, interactive=False, elem_id="compare-stop"
        )
        # On for the local llama engine (set from /healthz): it generates one answer at a
        # time, so run together one pane would wait for the other and count the wait.
        sequential = gr.Checkbox(
            label="one after the other",
            elem_id="compare-sequential",
            scale=0,
            min_width=120,
        )
    with gr.Row(elem_id="compare-panes", equal_height=False):
        panes = (_pane("A", STREAMING), _pane("B", NON_STREAMING))
    plot = timeline("compare-timeline", "Token arrival, both panes", height=170)
    return CompareTab(preset, prompt, run, stop, sequential, panes, plot)


@dataclass
class InspectorTab:
    kinds: gr.CheckboxGroup
    events: gr.HTML


def inspector_tab() -> InspectorTab:
    gr.Markdown(
        "The last answer's raw SSE events, one row each: the `id` (what `Last-Event-ID` "
        "resumes after), the `event:` name, what the client found in it (kind), the text it "
        "carried, its arrival in ms since the request, and the connection (0 = the first, "
        "n = the n-th resume). Open a row for its whole `data`.",
        elem_id="inspector-intro",
    )
    kinds = gr.CheckboxGroup(
        list(KIND_GROUPS), value=list(KIND_GROUPS), label="Show kinds", elem_id="inspector-kinds"
    )
    events = gr.HTML(inspector_html(None), elem_id="inspector", label="Events")
    return InspectorTab(kinds, events)

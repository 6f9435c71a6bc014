"""The Gradio layout: header, settings sidebar, and the Chat / Compare / Inspector tabs.

Only arrangement and wiring live here; what each event does is in
``ui.handlers``. Gradio 6 takes theme and CSS at mount time, so ``THEME`` and
``CSS`` are exported for ``ui.server``.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.handlers import MODES, NON_STREAMING, STREAMING, Handlers
from ui.render import EVENT_COLUMNS, header_html, metrics_html

__all__ = ["CSS", "THEME", "build_blocks"]

EXAMPLES = [
    "Explain Server-Sent Events in a few sentences.",
    "Why can a dropped stream resume without re-running the model?",
    "Write a haiku about tokens arriving one by one.",
]

CSS = """
.gradio-container { max-width: 1400px !important; }
.ssechat-header { display: flex; flex-wrap: wrap; align-items: center; gap: .6rem 1.2rem;
  padding: .7rem 1rem; border-radius: 12px;
  background: linear-gradient(90deg, #eef2ff, #f5f3ff); border: 1px solid #e0e7ff; }
.dark .ssechat-header { background: linear-gradient(90deg, #1e1b4b, #2e1065);
  border-color: #312e81; }
.ssechat-brand { font-size: 1.25rem; font-weight: 700; color: #4338ca; }
.dark .ssechat-brand { color: #c7d2fe; }
.ssechat-brand span { font-size: .85rem; font-weight: 400; color: #6b7280; margin-left: .4rem; }
.ssechat-pills { display: flex; flex-wrap: wrap; gap: .4rem; }
.ssechat-pill { font-size: .8rem; padding: .15rem .6rem; border-radius: 999px;
  background: rgba(255,255,255,.75); border: 1px solid #e5e7eb; }
.dark .ssechat-pill { background: rgba(0,0,0,.25); border-color: #374151; }
.ssechat-pill b { color: #6b7280; font-weight: 600; margin-right: .2rem; }
.ssechat-ok { border-color: #86efac; background: #f0fdf4; }
.ssechat-bad { border-color: #fca5a5; background: #fef2f2; }
.ssechat-hnote { width: 100%; font-size: .8rem; color: #b45309; }
.ssechat-metrics { padding: .2rem 0; }
.ssechat-title { font-weight: 600; margin-bottom: .35rem; }
.ssechat-cards { display: grid; grid-template-columns: repeat(4, minmax(0, 1fr)); gap: .5rem; }
.ssechat-card { border: 1px solid #e5e7eb; border-radius: 10px; padding: .45rem .6rem;
  background: rgba(127,127,127,.04); }
.ssechat-value { font-size: 1.2rem; font-weight: 700; font-variant-numeric: tabular-nums; }
.ssechat-label { font-size: .72rem; color: #6b7280; text-transform: uppercase;
  letter-spacing: .03em; }
.ssechat-note { font-size: .78rem; color: #6b7280; margin-top: .35rem; }
.ssechat-pane { padding: .2rem .4rem; }
"""

THEME: Any = gr.themes.Soft(primary_hue="indigo", secondary_hue="violet")


def build_blocks(handlers: Handlers) -> gr.Blocks:
    """All components and events; call ``.queue(...)`` on the result before mounting."""
    with gr.Blocks(title="ssechat · SSE chat") as blocks:
        header = gr.HTML(header_html(handlers.link.label, None, "connecting…"))

        with gr.Sidebar(label="Settings", open=True, width=300):
            gr.Markdown("### Settings")
            # value "" = the backend's default model until /v1/models has answered.
            model = gr.Dropdown(label="Model", choices=[""], value="", allow_custom_value=True)
            system_prompt = gr.Textbox(
                value="", label="System prompt", lines=3, placeholder="You are a helpful assistant."
            )
            temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature")
            top_p = gr.Slider(0.0, 1.0, value=1.0, step=0.01, label="Top-p")
            max_tokens = gr.Slider(1, 2048, value=256, step=1, label="Max tokens")
            refresh = gr.Button("↻ Refresh backend info", size="sm", variant="secondary")

        # Finished answers of the last Chat / Compare run; their change events draw the
        # timelines and the Inspector (ui.handlers.Handlers.show_answers says why).
        chat_answers = gr.State(None)
        compare_answers = gr.State(None)
        # Defined now (ChatInterface needs them as outputs), shown under the chat and in
        # the Inspector tab further down.
        chat_metrics = gr.HTML(
            metrics_html(None), label="Metrics", elem_id="chat-metrics", render=False
        )
        chat_timeline = gr.LinePlot(
            x="t_ms",
            y="tokens",
            color="answer",
            x_title="time since request (ms)",
            y_title="tokens received",
            title="Token arrival",
            elem_id="chat-timeline",
            label="Token arrival",
            show_label=False,
            height=230,
            render=False,
        )
        inspector = gr.Dataframe(
            headers=EVENT_COLUMNS,
            datatype=["str", "number", "str", "str", "str", "number"],
            column_widths=["9%", "6%", "6%", "8%", "61%", "10%"],
            wrap=True,
            max_height=620,
            interactive=False,
            show_search="search",
            label="Raw SSE events of the last answer",
            elem_id="inspector",
            render=False,
        )

        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                gr.ChatInterface(
                    handlers.chat,
                    chatbot=gr.Chatbot(
                        height=540,
                        label="Conversation",
                        show_label=False,
                        buttons=["copy", "copy_all"],
                        placeholder="Ask anything: the answer streams in over SSE.",
                        elem_id="chat-bot",
                    ),
                    textbox=gr.Textbox(
                        placeholder="Type a message and press Enter…",
                        submit_btn=True,
                        stop_btn=True,
                        elem_id="chat-input",
                        show_label=False,
                    ),
                    additional_inputs=[model, system_prompt, temperature, top_p, max_tokens],
                    additional_outputs=[chat_metrics, chat_answers],
                    examples=[[example] for example in EXAMPLES],
                    cache_examples=False,
                    editable=True,
                    save_history=True,
                    api_name="chat",
                    concurrency_limit=None,
                    fill_height=False,
                )
                with gr.Row(equal_height=True):
                    with gr.Column(scale=2, min_width=320):
                        _render(chat_metrics)
                    with gr.Column(scale=3, min_width=360):
                        _render(chat_timeline)

            with gr.Tab("Compare", id="compare"):
                gr.Markdown(
                    "One prompt, two answers at the same time: pick two models or two "
                    "settings, or set one pane to **non-streaming** to see why SSE matters."
                )
                with gr.Row(equal_height=True):
                    compare_prompt = gr.Textbox(
                        value=EXAMPLES[0],
                        show_label=False,
                        placeholder="Prompt for both panes",
                        scale=6,
                        elem_id="compare-prompt",
                    )
                    compare_run = gr.Button("Run both", variant="primary", scale=1)
                    compare_stop = gr.Button("Stop", variant="stop", scale=1)
                panes: list[dict[str, Any]] = []
                with gr.Row():
                    for name, mode in (("A", STREAMING), ("B", NON_STREAMING)):
                        with gr.Column():
                            with gr.Row():
                                pane_model = gr.Dropdown(
                                    label=f"{name}: model",
                                    choices=[""],
                                    value="",
                                    allow_custom_value=True,
                                )
                                pane_mode = gr.Radio(list(MODES), value=mode, label="Mode")
                            with gr.Row():
                                pane_temp = gr.Slider(
                                    0.0, 2.0, value=0.7, step=0.05, label="Temperature"
                                )
                                pane_max = gr.Slider(1, 2048, value=128, step=1, label="Max tokens")
                            pane_text = gr.Markdown(
                                "_The answer appears here._",
                                label=f"Answer {name}",
                                elem_id=f"compare-pane-{name.lower()}",
                                elem_classes=["ssechat-pane"],
                                min_height=220,
                                max_height=380,
                            )
                            pane_metrics = gr.HTML(
                                metrics_html(None, name),
                                label=f"Metrics {name}",
                                elem_id=f"compare-metrics-{name.lower()}",
                            )
                            panes.append(
                                {
                                    "model": pane_model,
                                    "mode": pane_mode,
                                    "temp": pane_temp,
                                    "max": pane_max,
                                    "text": pane_text,
                                    "metrics": pane_metrics,
                                }
                            )
                compare_timeline = gr.LinePlot(
                    x="t_ms",
                    y="tokens",
                    color="answer",
                    x_title="time since request (ms)",
                    y_title="tokens received",
                    title="Token arrival, both panes",
                    elem_id="compare-timeline",
                    label="Token arrival, both panes",
                    show_label=False,
                    height=260,
                )

            with gr.Tab("Inspector", id="inspector"):
                gr.Markdown(
                    "Every event of the last answer exactly as it arrived: the SSE `id` "
                    "(1, 2, 3 …, used by `Last-Event-ID` to resume), the event type, the "
                    "`data` line (a `chat.completion.chunk`, then `[DONE]`) and the arrival "
                    "time. `conn` > 0 marks events received after an automatic resume."
                )
                _render(inspector)

        a, b = panes
        run_event = gr.on(
            [compare_run.click, compare_prompt.submit],
            handlers.compare,
            inputs=[
                compare_prompt,
                system_prompt,
                top_p,
                a["model"],
                a["mode"],
                a["temp"],
                a["max"],
                b["model"],
                b["mode"],
                b["temp"],
                b["max"],
            ],
            outputs=[a["text"], b["text"], a["metrics"], b["metrics"], compare_answers],
            api_name="compare",
            concurrency_limit=None,
            show_progress="hidden",
        )
        compare_stop.click(None, None, None, cancels=[run_event])
        chat_answers.change(
            handlers.show_answers,
            chat_answers,
            [chat_timeline, inspector],
            api_visibility="private",
            show_progress="hidden",
        )
        compare_answers.change(
            handlers.show_answers,
            compare_answers,
            [compare_timeline, inspector],
            api_visibility="private",
            show_progress="hidden",
        )

        info_outputs = [header, model, a["model"], b["model"]]
        blocks.load(handlers.load, None, info_outputs, api_visibility="private")
        refresh.click(handlers.load, None, info_outputs, api_visibility="private")
    built: gr.Blocks = blocks
    return built


def _render(component: Any) -> None:
    """Place a component defined earlier with ``render=False`` here."""
    component.render()

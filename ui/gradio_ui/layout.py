"""The Gradio app: header, settings sidebar, the three tabs, and every event's wiring.

What each event does is in ``ui.gradio_ui.handlers`` (and its ``chat`` and
``compare``); the tabs' components in ``ui.gradio_ui.tabs``. Gradio 6 takes
theme, CSS and the page script at mount time: ``ui.server`` passes ``THEME``,
``CSS_PATH`` and ``page_js()``.

Why every event is wired through ``_on`` with ``show_progress_on`` a
server-side ``gr.State``, and why no large component is ever an event input:
on every status message of any event (one per streamed update) Gradio's
browser side refreshes the loading status of every component in its
loading-status table, deep-copying each one's whole value. That table gains
the progress targets of every event that ran (its outputs unless
``show_progress_on`` says otherwise) and the inputs of every event that
finished. A ``gr.State`` has no value in the browser, so nothing is copied
for it; the conversation's history lives in a ``gr.State`` (the Chatbot only
shows it), and the saved chats' ``gr.BrowserState`` is only ever an output
(the page script hands its value over once per load). So an update costs the
browser the same in a chat of 200 messages as in a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.events import api

from ui.gradio_ui.handlers import Handlers
from ui.gradio_ui.header import header_html
from ui.gradio_ui.tabs import DIALECT_CHOICES, chat_tab, compare_tab, inspector_tab

__all__ = ["CSS_PATH", "SIDEBAR_BREAKPOINT_PX", "THEME", "build_blocks", "page_js"]

THEME: Any = gr.themes.Soft(primary_hue="indigo", secondary_hue="violet")
CSS_PATH = Path(str(resources.files("ui").joinpath("static/gradio.css")))
# Below this window width the settings sidebar starts closed (and closes when the
# window shrinks past it): the content needs the room.
SIDEBAR_BREAKPOINT_PX = 1000


def page_js() -> str:
    """The page script (sidebar by width, conversation pinned to its end)."""
    script = resources.files("ui").joinpath("static/gradio.js").read_text("utf-8")
    return script.replace("SIDEBAR_BREAKPOINT_PX", str(SIDEBAR_BREAKPOINT_PX))


def build_blocks(handlers: Handlers) -> gr.Blocks:
    """All components and events; call ``.queue(...)`` on the result before mounting."""
    with gr.Blocks(title="ssechat · SSE chat") as blocks:
        # What every event shows its progress on (see the module docstring).
        status = gr.State(None)

        def _on(
            triggers: Any, fn: Callable[..., Any] | None, inputs: Any, outputs: Any, **kwargs: Any
        ) -> Any:
            kwargs.setdefault("api_visibility", "private")
            kwargs.setdefault("concurrency_limit", None)
            return gr.on(
                triggers,
                fn,
                inputs=inputs,
                outputs=outputs,
                show_progress="hidden",
                show_progress_on=[status],
                **kwargs,
            )

        # Keyword arguments of a ``.then()`` step, as ``_on`` gives to every event.
        chained: dict[str, Any] = {
            "show_progress": "hidden",
            "show_progress_on": [status],
            "api_visibility": "private",
            "concurrency_limit": None,
        }

        header = gr.HTML(header_html(handlers.link.label, None), elem_id="ssechat-header")

        with gr.Sidebar(label="Settings", open=False, width=300, elem_id="ssechat-sidebar"):
            new_chat = gr.Button("+ New chat", variant="primary", size="sm", elem_id="new-chat")
            saved_list = gr.Dataset(
                components=[gr.Textbox(visible=False)],
                samples=[],
                label="Saved chats (this browser)",
                layout="table",
                type="index",
                elem_id="saved-chats",
                samples_per_page=8,
            )
            # value "" = the backend's default model until /v1/models has answered.
            model = gr.Dropdown(label="Model", choices=[""], value="", allow_custom_value=True)
            dialect = gr.Dropdown(
                label="Dialect (wire format)",
                choices=DIALECT_CHOICES,
                value="chat",
                elem_id="dialect",
            )
            system_prompt = gr.Textbox(
                value="", label="System prompt", lines=2, placeholder="You are a helpful assistant."
            )
            temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature")
            top_p = gr.Slider(0.0, 1.0, value=1.0, step=0.01, label="Top-p")
            max_tokens = gr.Slider(1, 2048, value=256, step=1, label="Max tokens")
            refresh = gr.Button("↻ Refresh backend info", size="sm", variant="secondary")

        saved_browser = gr.BrowserState([], storage_key="ssechat_saved_chats")
        saved_transfer = gr.Textbox(visible=False)  # the page hands the saved chats over once
        saved = gr.State([])
        history = gr.State([])
        chat_index = gr.State(None)
        models = gr.State([])
        chat_answers = gr.State(None)
        compare_answers = gr.State(None)
        inspected = gr.State(None)

        with gr.Tabs(elem_id="ssechat-tabs"):
            with gr.Tab("Chat", id="chat"):
                chat = chat_tab()
            with gr.Tab("Compare", id="compare"):
                compare = compare_tab()
            with gr.Tab("Inspector", id="inspector-tab"):
                inspector = inspector_tab()

        settings = [model, dialect, system_prompt, temperature, top_p, max_tokens]
        turn = gr.State(None)  # the question being answered (see ChatHandlers)
        hc = handlers.chat
        begin_outputs = [
            turn,
            history,
            chat.conversation,
            chat.live,
            chat.message,
            chat.metrics,
            chat_answers,
            chat.send,
            chat.stop,
        ]
        finish_outputs = [
            turn,
            history,
            chat.conversation,
            chat.live,
            chat.metrics,
            chat_answers,
            chat.send,
            chat.stop,
        ]
        begins: list[tuple[list[Any], Callable[..., Any], list[Any]]] = [
            ([chat.message.submit, chat.send.click], hc.send, [turn, chat.message, history]),
            ([chat.conversation.retry], hc.retry, [turn, history]),
            ([chat.conversation.edit], hc.edit, [turn, history]),
            ([chat.conversation.example_select], hc.example, [turn, history]),
        ]
        for triggers, begin, begin_inputs in begins:
            _on(triggers, begin, begin_inputs, begin_outputs, trigger_mode="once").then(
                hc.stream, [turn, *settings], [chat.live, chat.metrics], **chained
            ).then(hc.finish, [turn], finish_outputs, **chained)
        _on(
            [chat.conversation.undo], hc.undo, [history], [history, chat.conversation, chat.message]
        )
        _on([chat.stop.click], hc.stop, None, None)
        api(hc.api_chat, api_name="chat", concurrency_limit=None)

        # Saved chats: the conversation is kept in the browser after every change.
        chat_view = [chat_index, history, chat.conversation, chat.live]
        saved_outputs = [saved, saved_browser, saved_list]
        _on(
            [history.change],
            handlers.save_chat,
            [history, chat_index, saved],
            [chat_index, *saved_outputs],
        )
        _on([new_chat.click], handlers.new_chat, None, chat_view)
        _on(
            [chat.conversation.clear],
            handlers.delete_chat,
            [chat_index, saved],
            [*chat_view, *saved_outputs],
        )
        _on([saved_list.click], handlers.open_chat, [saved, saved_list], chat_view)
        # JS only (no server round trip, no loading status): BrowserState -> hidden box.
        gr.on(
            [blocks.load],
            None,
            inputs=[saved_browser],
            outputs=[saved_transfer],
            js="(saved) => JSON.stringify(saved || [])",
        ).then(
            handlers.import_saved,
            [saved_transfer],
            [saved, saved_list, saved_transfer],
            show_progress="hidden",
            show_progress_on=[status],
            api_visibility="private",
        )

        a, b = compare.panes
        pane_outputs = [a.answer, b.answer, a.metrics, b.metrics]
        cc = handlers.compare
        _on(
            [compare.run.click, compare.prompt.submit],
            cc.begin,
            [
                compare.prompt,
                compare.sequential,
                a.model,
                a.mode,
                a.dialect,
                b.model,
                b.mode,
                b.dialect,
            ],
            [*pane_outputs, compare_answers, compare.run, compare.stop],
            trigger_mode="once",
        ).then(
            cc.stream,
            [
                compare.prompt,
                system_prompt,
                top_p,
                compare.sequential,
                *a.settings(),
                *b.settings(),
            ],
            pane_outputs,
            **chained,
        ).then(cc.finish, None, [compare_answers, compare.run, compare.stop], **chained)
        _on([compare.stop.click], cc.stop, None, None)
        pane_settings = [
            a.model,
            a.mode,
            a.dialect,
            a.temperature,
            b.model,
            b.mode,
            b.dialect,
            b.temperature,
        ]
        _on(
            [compare.preset.input],
            handlers.compare.apply_preset,
            [compare.preset, models, model],
            pane_settings,
        )

        # Timelines and the Inspector follow the last finished Chat answer or Compare run.
        for answers, plot in ((chat_answers, chat.timeline), (compare_answers, compare.timeline)):
            _on(
                [answers.change],
                handlers.show_answers,
                [answers, inspector.kinds],
                [plot, inspected, inspector.events],
            )
        _on(
            [inspector.kinds.change],
            handlers.filter_events,
            [inspected, inspector.kinds],
            inspector.events,
        )

        info_outputs = [
            header,
            model,
            models,
            chat.conversation,
            chat.message,
            compare.sequential,
            *pane_settings[:4],
            *pane_settings[4:],
        ]
        _on([blocks.load, refresh.click], handlers.load, [compare.preset], info_outputs)
    built: gr.Blocks = blocks
    return built

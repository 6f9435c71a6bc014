"""The Gradio UI: layout (and the tabs' components), handlers, and the pure pieces they draw.

Named ``gradio_ui``, not ``gradio``, which would shadow the library. Data
flows one way: ``ui.client`` (the stream) → ``live`` (an answer as it arrives)
→ ``messages`` / ``metrics`` / ``inspector`` / ``header`` (what is drawn) →
the handlers' outputs → Gradio.
"""

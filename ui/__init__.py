"""ssechat's Gradio UI: a pure SSE client of the backend's HTTP API (see ``ui.client``)."""

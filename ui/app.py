"""Entry point: ``python ui/app.py`` (from the repository root; also a Space's ``app_file``).

Serves the Gradio UI and, unless ``SSECHAT_BACKEND_URL`` names a remote
backend, the backend API too, on one port (``GRADIO_SERVER_NAME`` /
``GRADIO_SERVER_PORT``, default 127.0.0.1:7860). The wiring is in ``ui.server``.

Run as a script, Python puts ``ui/`` itself first on ``sys.path``, where its
modules could shadow top-level packages and ``ui``/``backend`` are not
importable; ``main`` swaps it for the repository root before importing.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path


def _fix_sys_path() -> None:
    here = Path(__file__).resolve().parent
    root = here.parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))


def main() -> None:
    _fix_sys_path()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from ui.server import serve

    serve()


if __name__ == "__main__":
    main()

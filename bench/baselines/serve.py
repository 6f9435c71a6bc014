"""Serve a uvicorn baseline with exactly the uvicorn settings ``python -m backend`` uses.

``python -m bench.baselines.serve floor|raw|sse_starlette|fastapi --port P``
"""

from __future__ import annotations

import argparse

import uvicorn

_APPS = {
    "floor": "bench.baselines.floor:build_app",
    "raw": "bench.baselines.raw_starlette:build_app",
    "sse_starlette": "bench.baselines.sse_starlette_app:build_app",
    "fastapi": "bench.baselines.fastapi_sse:build_app",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=sorted(_APPS))
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # Same as backend/__main__.py: uvloop, httptools, one worker, log level warning
    # (which also silences the access log).
    uvicorn.run(
        _APPS[args.app],
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=1,
        log_level="warning",
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()

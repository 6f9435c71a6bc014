"""The classic Flask tutorial server: a generator in a ``text/event-stream`` ``Response``.

Run on Flask's threaded development server (one thread per connection), as
the tutorials do; request logging is off like the uvicorn servers'.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

from flask import Flask, Response

from bench.baselines.payload import PATH, RETRY_MS, SSE_HEADERS, load_payload


def build_app() -> Flask:
    data = load_payload().data
    app = Flask(__name__)

    @app.post(PATH)
    def completions() -> Response:
        def stream() -> Iterator[str]:
            for seq, item in enumerate(data, start=1):
                retry = f"retry: {RETRY_MS}\n" if seq == 1 else ""
                yield f"id: {seq}\n{retry}data: {item}\n\n"

        return Response(stream(), mimetype="text/event-stream", headers=SSE_HEADERS)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    build_app().run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()

"""Where our server's CPU goes, sampled with py-spy under the section 1 and 2 loads.

``full``: simulated engine at full speed, wrk POSTing 200-token requests (section 1).
``paced``: 20 tokens/s per stream, ``--streams`` concurrent streams (section 2).

py-spy samples the server's Python stacks (``--rate`` Hz); idle worker
threads are dropped. "self" is time in the function's own code (C calls it
makes included, so e.g. the socket write shows under uvicorn's ``send``);
"inclusive" adds everything it calls. ``python -m bench.profile_ours --mode full``
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.support import CLIENT_CPUS, RESULTS, Server, free_port, pinned, write_json

logger = logging.getLogger("bench.profile_ours")

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>.*?)(?::\d+)?\)$")
_IDLE = ("Condition.wait", "wait (threading", "select (selectors", "Event.wait (threading")
_WRAPPERS = ("main (", "APIKeyAuth.__call__ (", "BodySizeLimit.__call__ (")
_SITE = re.compile(r"^.*?/(site-packages|lib/python3\.\d+)/")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = _SITE.sub("", match["file"])
    path = path.split("/work/main/")[-1] if "/work/main/" in path else path
    return f"{match['name']} ({path})"


def summarise(folded: str, top: int = 15) -> dict[str, Any]:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    busy = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_short(frame) for frame in stack.split(";")]
        if frames[-1].startswith(_IDLE):
            continue
        count = int(count_text)
        busy += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count

    def pct(counter: collections.Counter[str], keep: Any) -> list[tuple[float, str]]:
        rows = [(100 * n / busy, name) for name, n in counter.most_common() if keep(name)]
        return rows[:top]

    return {
        "samples": busy,
        "self": pct(own, lambda name: True),
        # main() and the pure-ASGI middlewares wrap everything: not informative.
        "inclusive_backend": pct(
            inclusive,
            lambda name: "(backend/" in name and not name.startswith(_WRAPPERS),
        ),
    }


def profile(mode: str, seconds: float, rate: int, streams: int) -> dict[str, Any]:
    spy = py_spy()
    if spy is None:
        raise RuntimeError("py-spy is not installed (pip install py-spy)")
    port = free_port()
    tokens_per_s = "0" if mode == "full" else "20"
    gc_file = RESULTS / f"profile-{mode}-gc.json"
    gc_file.unlink(missing_ok=True)
    # ``python -m backend`` run through gc_probe, which times the cyclic GC.
    command = [sys.executable, "-m", "bench.profile_ours", "gc-probe", "--engine", "simulated"]
    server = Server(
        f"profile-{mode}",
        [*command, "--port", str(port), "--log-level", "warning"],
        port,
        env={"SSECHAT_SIM_TOKENS_PER_S": tokens_per_s, "BENCH_GC_FILE": str(gc_file)},
    )
    out = RESULTS / f"profile-{mode}.folded"
    with server:
        if mode == "full":
            from bench.throughput import PATH, request_body, run_wrk

            body = request_body(seed=0)
            run_wrk(server.base_url + PATH, body, connections=32, seconds=1)
            load = subprocess.Popen(
                pinned(
                    [sys.executable, "-c", _WRK_CALL, server.base_url + PATH, str(seconds + 2)],
                    None,
                ),
            )
        else:
            load = subprocess.Popen(
                pinned(
                    [
                        sys.executable,
                        "-m",
                        "bench.many_streams",
                        "client",
                        "--port",
                        str(port),
                        "--n",
                        str(streams),
                        "--ramp",
                        "2",
                        "--seed",
                        "0",
                        "--timeout",
                        "60",
                    ],
                    CLIENT_CPUS,
                ),
                stdout=subprocess.DEVNULL,
            )
            time.sleep(2.5)  # the ramp: profile the streaming, not the start-up
        spied = subprocess.run(
            [
                spy,
                "record",
                "-p",
                str(server.pid),
                "-d",
                str(int(seconds)),
                "-r",
                str(rate),
                "-f",
                "raw",
                "-o",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        )
        load.wait(timeout=120)
    if spied.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed: {spied.stderr[-500:]}")
    summary = summarise(out.read_text())
    summary.update({"mode": mode, "seconds": seconds, "rate_hz": rate, "streams": streams})
    if gc_file.exists():
        summary["gc"] = json.loads(gc_file.read_text())
    return summary


def gc_probe(argv: list[str]) -> int:
    """``python -m backend`` with the cyclic GC timed (gc.callbacks); stats to $BENCH_GC_FILE.

    py-spy charts a collection to whichever frame allocated the object that
    triggered it, so GC time is scattered over the profile; this adds it up.
    """
    import gc

    from backend.__main__ import main as backend_main

    seconds = [0.0, 0.0, 0.0]
    counts = [0, 0, 0]
    began = [0.0]

    def timer(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            seconds[info["generation"]] += time.perf_counter() - began[0]
            counts[info["generation"]] += 1

    gc.callbacks.append(timer)
    cpu = time.process_time()
    code = backend_main(argv)
    cpu = time.process_time() - cpu
    gc.callbacks.remove(timer)
    write_json(
        Path(os.environ["BENCH_GC_FILE"]),
        {
            "collections": counts,
            "seconds": seconds,
            "cpu_s": cpu,
            "gc_percent_of_cpu": 100 * sum(seconds) / cpu if cpu else 0.0,
            "tracked_objects_at_exit": len(gc.get_objects()),
        },
    )
    return code


# wrk on the client core, in a child so the profiler can run meanwhile.
_WRK_CALL = (
    "import sys; from bench.throughput import request_body, run_wrk; "
    "run_wrk(sys.argv[1], request_body(seed=0), connections=32, seconds=float(sys.argv[2]))"
)


def main() -> None:
    if sys.argv[1:2] == ["gc-probe"]:
        raise SystemExit(gc_probe(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=["full", "paced"], default="full")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=200, help="samples per second")
    parser.add_argument("--streams", type=int, default=800, help="paced mode: open streams")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = profile(args.mode, args.seconds, args.rate, args.streams)
    write_json(args.out or RESULTS / f"profile-{args.mode}.json", result)
    for pct, name in result["self"]:
        sys.stdout.write(f"{pct:5.1f}%  {name}\n")


if __name__ == "__main__":
    main()

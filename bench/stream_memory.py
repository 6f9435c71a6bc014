"""Where the memory of an open stream goes, by the code that allocated it.

The server (``python -m backend``, memory hub, one worker) runs under
``tracemalloc`` with the simulated engine so slow that each stream stays
open after its first event. The orchestrator opens ``--n`` streams over raw
sockets (after a few warm-up streams, so first-use caches are not counted),
asks the server for a snapshot before and after (``SIGUSR1``; the server
writes a ``tracemalloc`` snapshot and its cyclic-GC object counts by type),
and writes the growth per stream: by package, by the innermost line of our
code or the framework's that allocated it, and by object type.

tracemalloc sees what Python allocates, not uvloop's or httptools' own C
memory, and its own bookkeeping inflates RSS: read the RSS per stream from
``bench.many_streams``, and the split from here.

``python -m bench.stream_memory --n 500 [--top 40]``
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import logging
import os
import pickle
import runpy
import signal
import sys
import time
import tracemalloc
from pathlib import Path
from types import FrameType
from typing import Any

from bench.idle_streams import idle_request
from bench.support import HOST, RESULTS, Server, free_port, write_json

logger = logging.getLogger("bench.stream_memory")

FRAMES = 30
PACKAGES = ("backend", "fastapi", "starlette", "uvicorn", "pydantic", "anyio")

# -- the server (its own process) -----------------------------------------------------------


def server_main(out: Path, argv: list[str]) -> None:
    tracemalloc.start(FRAMES)

    def dump(_signum: int, _frame: FrameType | None) -> None:
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(str(out.with_suffix(".tmp")))
        types = collections.Counter(type(o).__qualname__ for o in gc.get_objects())
        out.with_suffix(".types").write_bytes(pickle.dumps(types))
        os.replace(out.with_suffix(".tmp"), out)

    signal.signal(signal.SIGUSR1, dump)
    sys.argv = ["backend", *argv]
    runpy.run_module("backend", run_name="__main__", alter_sys=True)


# -- the orchestrator -----------------------------------------------------------------------


def _snapshot(pid: int, out: Path) -> tuple[tracemalloc.Snapshot, collections.Counter[str]]:
    out.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 120
    while not out.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the server wrote no snapshot")
        time.sleep(0.1)
    types: collections.Counter[str] = pickle.loads(out.with_suffix(".types").read_bytes())
    return tracemalloc.Snapshot.load(str(out)), types


def _where(traceback: tracemalloc.Traceback) -> tuple[str, str]:
    """(package, innermost line of a package we name) of one allocation."""
    for frame in reversed(list(traceback)):
        for package in PACKAGES:
            marker = f"/{package}/"
            if marker in frame.filename:
                line = frame.filename.rsplit(marker, 1)[1]
                return package, f"{package}/{line}:{frame.lineno}"
    return "other", f"{Path(traceback[0].filename).name}:{traceback[0].lineno}"


async def _open_streams(port: int, n: int) -> list[asyncio.StreamWriter]:
    request = idle_request(port)

    async def one() -> asyncio.StreamWriter:
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(request)
        await reader.readuntil(b"\n\n")  # the response head
        await reader.readuntil(b"\n\n")  # the first event
        return writer

    writers: list[asyncio.StreamWriter] = []
    for start in range(0, n, 50):  # in waves: the listen backlog is finite
        writers += await asyncio.gather(*(one() for _ in range(min(50, n - start))))
    return writers


def measure(n: int, top: int) -> dict[str, Any]:
    port = free_port()
    out = RESULTS / f"stream-memory-{port}.snapshot"
    env = {
        "SSECHAT_SIM_TOKENS_PER_S": "0.001",
        "SSECHAT_SIM_FILL_MAX_TOKENS": "1",
        "SSECHAT_KEEPALIVE_S": "60",
        "SSECHAT_KEEP_ALIVE_TIMEOUT_S": "600",
    }
    command = [sys.executable, "-m", "bench.stream_memory", "server", "--out", str(out)]
    command += ["--engine", "simulated", "--port", str(port), "--log-level", "warning"]
    with Server("stream-memory", command, port, env=env) as server:

        async def run() -> dict[str, Any]:
            for writer in await _open_streams(port, 20):
                writer.close()
            await asyncio.sleep(2)
            before, types_before = _snapshot(server.pid, out)
            writers = await _open_streams(port, n)
            await asyncio.sleep(1)
            after, types_after = _snapshot(server.pid, out)
            for writer in writers:
                writer.close()
            return _summarise(n, top, before, after, types_before, types_after)

        try:
            return asyncio.run(run())
        finally:
            for path in (out, out.with_suffix(".types")):
                path.unlink(missing_ok=True)


def _summarise(
    n: int,
    top: int,
    before: tracemalloc.Snapshot,
    after: tracemalloc.Snapshot,
    types_before: collections.Counter[str],
    types_after: collections.Counter[str],
) -> dict[str, Any]:
    packages: collections.Counter[str] = collections.Counter()
    lines: collections.Counter[str] = collections.Counter()
    for stat in after.compare_to(before, "traceback"):
        package, line = _where(stat.traceback)
        packages[package] += stat.size_diff
        lines[line] += stat.size_diff
    types = collections.Counter({k: types_after[k] - types_before.get(k, 0) for k in types_after})
    return {
        "n": n,
        "bytes_per_stream": sum(packages.values()) / n,
        "by_package": {k: v / n for k, v in packages.most_common()},
        "by_line": {k: v / n for k, v in lines.most_common(top)},
        "gc_objects_per_stream": sum(types.values()) / n,
        "gc_types": {k: v / n for k, v in types.most_common(top)},
    }


def _report(result: dict[str, Any]) -> str:
    rows = [f"N = {result['n']}: {result['bytes_per_stream'] / 1024:.2f} KB per open stream"]
    rows += [f"  {v:8.0f} B  {k}" for k, v in result["by_package"].items() if v >= 1]
    rows.append("by line (innermost of ours or the framework's):")
    rows += [f"  {v:8.0f} B  {k}" for k, v in result["by_line"].items()]
    rows.append(f"GC-tracked objects per stream: {result['gc_objects_per_stream']:.1f}")
    rows += [f"  {v:7.2f}  {k}" for k, v in result["gc_types"].items()]
    return "\n".join(rows)


def main() -> None:
    if sys.argv[1:2] == ["server"]:
        server = argparse.ArgumentParser()
        server.add_argument("--out", type=Path, required=True)
        args, rest = server.parse_known_args(sys.argv[2:])
        server_main(args.out, rest)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--out", type=Path, default=RESULTS / "stream_memory.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    result = measure(args.n, args.top)
    write_json(args.out, result)
    logger.info("%s", _report(result))


if __name__ == "__main__":
    main()

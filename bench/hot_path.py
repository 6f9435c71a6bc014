"""The plain-text hot path before and after a change, measured in one run.

Two figures, each on both trees, the trees alternating within every round:

- throughput against raw: section 1's wrk run (``bench.throughput``) of ours,
  raw Starlette, and ours from the other tree as a ``--variant`` (which must
  answer with the very same events);
- CPU per event at 20 tokens/s: section 2's load (``bench.many_streams``),
  N streams from the load generator, server CPU from /proc.

Ratios are taken within a round (after / before), then the median: the
machine is shared, so only figures from the same run are compared, and CPU
time per event rather than wall-clock rates.

``python -m bench.hot_path --before /tmp/before [--rounds 3] [--n 500]``
(``/tmp/before``: a checkout of the earlier commit, e.g. ``git worktree add``).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import many_streams, throughput
from bench.support import RESULTS, write_json

logger = logging.getLogger("bench.hot_path")


def paced(before: Path, *, rounds: int, n: int, ramp_s: float) -> dict[str, Any]:
    seed, tokens = many_streams.longest_seed()
    runs: list[dict[str, Any]] = []
    for round_index in range(rounds):
        trees: list[tuple[str, Path | None]] = [("after", None), ("before", before)]
        for name, root in trees if round_index % 2 == 0 else trees[::-1]:
            result = many_streams.run_one(
                n, seed=seed, tokens=tokens, ramp_s=ramp_s, backend_root=root
            )
            logger.info(
                "round %d %-6s N=%d: %.1f us cpu/event, lateness p99 %.1f ms, completed %d",
                round_index,
                name,
                n,
                result.server_cpu_us_per_event,
                result.client["lateness_ms"]["p99"],
                result.client["completed"],
            )
            runs.append(
                {
                    "round": round_index,
                    "tree": name,
                    "cpu_us_per_event": result.server_cpu_us_per_event,
                    "server_cpu_percent": result.server_cpu_percent,
                    "server_wait_percent": result.server_wait_percent,
                    "lateness_p99_ms": result.client["lateness_ms"]["p99"],
                    "completed": result.client["completed"],
                }
            )
    ratios = []
    for round_index in range(rounds):
        by_tree = {run["tree"]: run for run in runs if run["round"] == round_index}
        ratios.append(by_tree["after"]["cpu_us_per_event"] / by_tree["before"]["cpu_us_per_event"])
    return {
        "n": n,
        "rate": many_streams.RATE,
        "runs": runs,
        "cpu_per_event_us": {
            tree: statistics.median(run["cpu_us_per_event"] for run in runs if run["tree"] == tree)
            for tree in ("after", "before")
        },
        "after_over_before": statistics.median(ratios),
        "ratios": ratios,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="the other tree's root")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of wrk per run")
    parser.add_argument("--n", type=int, default=500, help="streams at 20 tokens/s")
    parser.add_argument("--ramp", type=float, default=2.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "hot_path.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    before = args.before.resolve()
    wrk = throughput.run(
        rounds=args.rounds,
        seconds=args.duration,
        warmup_s=1.0,
        connections=32,
        servers=("ours", "raw"),
        variants={"before": before},
    )
    ours, old = wrk["summary"]["ours"], wrk["summary"]["before"]
    cpu_ratios = [
        after / earlier
        for after, earlier in zip(ours["cpu_ratios"], old["cpu_ratios"], strict=True)
    ]
    wall_ratios = [
        after / earlier for after, earlier in zip(ours["ratios"], old["ratios"], strict=True)
    ]
    load = paced(before, rounds=args.rounds, n=args.n, ramp_s=args.ramp)
    result = {
        "before": str(before),
        "throughput": wrk,
        "throughput_after_over_before": {
            "events_per_cpu_s": statistics.median(cpu_ratios),
            "events_per_s": statistics.median(wall_ratios),
            "cpu_ratios": cpu_ratios,
            "wall_ratios": wall_ratios,
        },
        "paced": load,
        "finished_at": time.time(),
    }
    write_json(args.out, result)
    sys.stdout.write(
        f"throughput × raw (CPU): after {ours['cpu_ratio_to_raw']:.3f}, "
        f"before {old['cpu_ratio_to_raw']:.3f}; after/before per round "
        f"{statistics.median(cpu_ratios):.3f} (CPU), {statistics.median(wall_ratios):.3f} (wall)\n"
        f"CPU per event at {many_streams.RATE:.0f} tokens/s, N={args.n}: after "
        f"{load['cpu_per_event_us']['after']:.1f} us, before "
        f"{load['cpu_per_event_us']['before']:.1f} us; "
        f"after/before {load['after_over_before']:.3f}\n"
    )


if __name__ == "__main__":
    main()

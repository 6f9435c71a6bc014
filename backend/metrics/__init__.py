"""The backend's Prometheus metrics: what is counted, and where it is exposed.

``Metrics`` (one per app, built in ``create_app``) names every metric; the
hot paths hold onto the series they add to (``StreamMeter`` for a
generation), so a token costs a few additions in memory: no lock, no file,
no label lookup. One worker renders its own registry; with several workers
(``SSECHAT_METRICS_DIR``, set up by ``python -m backend --workers N``)
``/metrics`` adds up every worker's (``backend.metrics.shared``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from backend.metrics.registry import (
    Counter,
    CounterCell,
    Gauge,
    GaugeMode,
    Histogram,
    HistogramSeries,
    Registry,
    Snapshot,
    render,
)
from backend.metrics.shared import SharedMetrics

__all__ = ["Metrics", "StreamMeter"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_GAP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
_ROUND_TRIP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5)


def _resident_bytes() -> float:
    """This process's RSS from /proc (Linux); 0 elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return float(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, IndexError):
        return 0.0


class Metrics:
    """Every metric of one app (one worker). See the README's "Metrics" section."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.active_responses = 0
        self._shared: SharedMetrics | None = None
        stream = ("dialect", "engine")
        self.streams_total = self._counter(
            "ssechat_streams_total", "Streams started, by dialect and engine.", stream
        )
        self.resumes = self._counter(
            "ssechat_resumes_total",
            "Reconnections to a stream after an event id (Last-Event-ID, starting_after).",
        )
        self.events_sent = self._counter(
            "ssechat_events_sent_total", "SSE events written to clients."
        )
        self.generated_tokens = self._counter(
            "ssechat_generated_tokens_total",
            "Output deltas (tokens: text, reasoning, tool-call or refusal pieces) engines "
            "produced, by dialect and engine; streamed or not.",
            stream,
        )
        self.generations = self._counter(
            "ssechat_generations_total",
            "Generations ended, by dialect, engine and finish reason (stop, length, "
            "tool_calls, content_filter, cancelled, error).",
            (*stream, "finish_reason"),
        )
        self.engine_errors = self._counter(
            "ssechat_engine_errors_total",
            "Errors raised by engines, by engine and code (for the openai engine, the "
            "upstream's faults: upstream_timeout, upstream_status_502, ...).",
            ("engine", "code"),
        )
        self.cancellations = self._counter(
            "ssechat_cancellations_total",
            "Generations stopped early, by reason (cancelled, abandoned, shutdown, error).",
            ("reason",),
        )
        self.client_disconnects = self._counter(
            "ssechat_client_disconnects_total", "SSE responses closed by the client mid-stream."
        )
        self.errors = self._counter(
            "ssechat_errors_total", "Errors reported to clients, by type.", ("type",)
        )
        self.time_to_first_token = self._histogram(
            "ssechat_time_to_first_token_seconds",
            "From the request to the engine's first output delta, by dialect and engine.",
            _LATENCY_BUCKETS,
            stream,
        )
        self.inter_token_latency = self._histogram(
            "ssechat_inter_token_latency_seconds",
            "Between consecutive output deltas of one generation, by dialect and engine.",
            _GAP_BUCKETS,
            stream,
        )
        self.generation_duration = self._histogram(
            "ssechat_generation_duration_seconds",
            "From the request to the generation's end (finished, cancelled or failed), "
            "by dialect and engine.",
            _DURATION_BUCKETS,
            stream,
        )
        self.redis_round_trip = self._histogram(
            "ssechat_redis_round_trip_seconds",
            "Round trips to Redis (Redis hub), by operation.",
            _ROUND_TRIP_BUCKETS,
            ("operation",),
        )
        self.add_gauge("ssechat_workers", "Worker processes serving (each reports 1).", lambda: 1.0)
        self.add_gauge(
            "ssechat_streams_active",
            "SSE responses currently open.",
            lambda: float(self.active_responses),
        )
        self.add_gauge(
            "ssechat_asyncio_tasks", "asyncio tasks alive.", lambda: float(len(asyncio.all_tasks()))
        )
        self.add_gauge("ssechat_threads", "Threads alive.", lambda: float(threading.active_count()))
        self.add_gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes (all workers together).",
            _resident_bytes,
        )

    def _counter(self, name: str, help_text: str, labels: tuple[str, ...] = ()) -> Counter:
        counter = Counter(name, help_text, labels)
        self.registry.register(counter)
        return counter

    def _histogram(
        self, name: str, help_text: str, buckets: tuple[float, ...], labels: tuple[str, ...]
    ) -> Histogram:
        histogram = Histogram(name, help_text, buckets, labels)
        self.registry.register(histogram)
        return histogram

    def add_gauge(
        self,
        name: str,
        help_text: str,
        read: Callable[[], float],
        labels: Mapping[str, str] | None = None,
        mode: GaugeMode = "sum",
    ) -> None:
        """A gauge read at each scrape; ``mode`` says how workers' values combine
        (``sum``: each worker has its share; ``max``: each sees the same whole)."""
        self.registry.register(Gauge(name, help_text, read, labels, mode))

    def observe_redis_round_trip(self, seconds: float, operation: str) -> None:
        """The hook a Redis client calls after a round trip (per command or pipeline)."""
        self.redis_round_trip.observe(seconds, (operation,))

    def meter(self, dialect: str, engine: str, started: float) -> StreamMeter:
        """Counts for one generation of ``engine`` in ``dialect``, requested at ``started``
        (``time.perf_counter()``)."""
        return StreamMeter(self, dialect, engine, started)

    # -- exposition -----------------------------------------------------------------------
    def share(self, directory: Path) -> None:
        """Publish this worker's figures to ``directory`` and expose the deployment's."""
        self._shared = SharedMetrics(directory, self.registry.snapshot)
        self._shared.start()

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()
            self._shared = None

    def collect(self) -> Snapshot:
        """This worker's figures, or the deployment's when shared."""
        if self._shared is not None:
            return self._shared.collect()
        return self.registry.snapshot()

    def render(self) -> str:
        return render(self.collect())


class StreamMeter:
    """What one generation adds to the metrics; see ``backend.generation.wrappers``."""

    __slots__ = ("_dialect", "_engine", "_metrics", "_started", "ended", "gaps", "tokens")

    def __init__(self, metrics: Metrics, dialect: str, engine: str, started: float) -> None:
        key = (dialect, engine)
        self._metrics = metrics
        self._dialect = dialect
        self._engine = engine
        self._started = started
        self.ended = False  # how it ended is counted once, by the first ``end``
        # Held for the whole generation: a token adds to them directly.
        self.tokens: CounterCell = metrics.generated_tokens.cell(key)
        self.gaps: HistogramSeries = metrics.inter_token_latency.series(key)

    def first_token(self, now: float) -> None:
        self._metrics.time_to_first_token.observe(
            now - self._started, (self._dialect, self._engine)
        )

    def error(self, error_type: str, code: str | None) -> None:
        self._metrics.errors.inc(label_value=error_type)
        self._metrics.engine_errors.add((self._engine, code or error_type))

    def end(self, finish_reason: str) -> None:
        """Count how the generation ended; a no-op once it has been counted."""
        if self.ended:
            return
        self.ended = True
        key = (self._dialect, self._engine)
        self._metrics.generations.add((*key, finish_reason))
        self._metrics.generation_duration.observe(time.perf_counter() - self._started, key)

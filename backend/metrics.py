"""A few Prometheus metrics, rendered in the text exposition format (version 0.0.4).

Hand-rolled on purpose: the hot path only adds to integers, and one
process needs no client library. Labels are fixed at construction.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Counter:
    name: str
    help: str
    label: str | None = None
    values: dict[str, float] = field(default_factory=dict)

    def inc(self, amount: float = 1.0, label_value: str = "") -> None:
        self.values[label_value] = self.values.get(label_value, 0.0) + amount

    def get(self, label_value: str = "") -> float:
        return self.values.get(label_value, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        if self.label is None:
            lines.append(f"{self.name} {_number(self.values.get('', 0.0))}")
        else:
            for value, amount in sorted(self.values.items()):
                lines.append(f'{self.name}{{{self.label}="{_escape(value)}"}} {_number(amount)}')
        return lines


@dataclass
class Gauge:
    name: str
    help: str
    read: Callable[[], float]
    labels: dict[str, str] = field(default_factory=dict)

    def render(self) -> list[str]:
        label_text = ",".join(f'{key}="{_escape(value)}"' for key, value in self.labels.items())
        suffix = f"{{{label_text}}}" if label_text else ""
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} gauge",
            f"{self.name}{suffix} {_number(self.read())}",
        ]


@dataclass
class Histogram:
    name: str
    help: str
    buckets: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.buckets)

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += value
        self.count += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        cumulative = 0
        for bound, amount in zip(self.buckets, self.counts, strict=True):
            cumulative += amount
            lines.append(f'{self.name}_bucket{{le="{_number(bound)}"}} {cumulative}')
        lines.append(f'{self.name}_bucket{{le="+Inf"}} {self.count}')
        lines.append(f"{self.name}_sum {_number(self.total)}")
        lines.append(f"{self.name}_count {self.count}")
        return lines


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """The backend's metrics; one instance per app, built in ``create_app``."""

    def __init__(self) -> None:
        self.active_responses = 0
        self.streams_total = Counter("ssechat_streams_total", "Streams started.")
        self.events_sent = Counter("ssechat_events_sent_total", "SSE events written to clients.")
        self.cancellations = Counter(
            "ssechat_cancellations_total",
            "Generations stopped early, by reason (cancelled, abandoned, shutdown).",
            label="reason",
        )
        self.client_disconnects = Counter(
            "ssechat_client_disconnects_total", "SSE responses closed by the client mid-stream."
        )
        self.errors = Counter(
            "ssechat_errors_total", "Errors reported to clients, by type.", label="type"
        )
        self.requests = Counter(
            "ssechat_requests_total", "API requests answered, by status.", label="status"
        )
        self.time_to_first_token = Histogram(
            "ssechat_time_to_first_token_seconds",
            "From request to first generated token.",
            (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self._gauges: list[Gauge] = [
            Gauge(
                "ssechat_streams_active",
                "SSE responses currently open.",
                lambda: float(self.active_responses),
            )
        ]

    def add_gauge(
        self,
        name: str,
        help_text: str,
        read: Callable[[], float],
        labels: dict[str, str] | None = None,
    ) -> None:
        self._gauges.append(Gauge(name, help_text, read, labels or {}))

    def render(self) -> str:
        lines: list[str] = []
        for gauge in self._gauges:
            lines.extend(gauge.render())
        for metric in (
            self.streams_total,
            self.events_sent,
            self.cancellations,
            self.client_disconnects,
            self.errors,
            self.requests,
        ):
            lines.extend(metric.render())
        lines.extend(self.time_to_first_token.render())
        return "\n".join(lines) + "\n"

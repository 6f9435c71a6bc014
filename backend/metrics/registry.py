"""Counters, gauges and histograms in plain process memory, and their exposition.

Hand-rolled on purpose: the hot path only adds to numbers it already holds
(no lock, no file, no label lookup per token), and a snapshot of the whole
registry is plain data, so the workers of one deployment can publish theirs
and any of them can add them up (``backend.metrics.shared``).

A snapshot is JSON-ready: ``{name: family}``, each family a dict with
``type`` (counter | gauge | histogram), ``help``, ``labels`` (names),
``mode`` (gauges: how workers combine, ``sum`` or ``max``), ``buckets``
(histograms: upper bounds) and ``series``: ``[label values, value]`` for
counters and gauges, ``[label values, per-bucket counts + overflow, sum]``
for histograms (counts not cumulative, so they add up across workers).
Rendering follows the text exposition format, version 0.0.4.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

LabelValues = tuple[str, ...]
GaugeMode = Literal["sum", "max"]
Family = dict[str, Any]
Snapshot = dict[str, Family]
S = TypeVar("S")


class CounterCell:
    """One labelled series of a counter, held by a hot path that adds to it often."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0


class _Labelled(Generic[S]):
    """A counter or histogram family: one series per tuple of label values, made on
    first use (what a hot path holds on to)."""

    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str]) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(labels)
        self._series: dict[LabelValues, S] = {}

    def _new(self) -> S:
        raise NotImplementedError

    def series(self, key: LabelValues = ()) -> S:
        series = self._series.get(key)
        if series is None:
            _check_labels(self.name, self.label_names, key)
            series = self._series[key] = self._new()
        return series

    def _family(self, **fields: Any) -> Family:
        return {"type": self.kind, "help": self.help, "labels": list(self.label_names), **fields}


class Counter(_Labelled[CounterCell]):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)

    def _new(self) -> CounterCell:
        return CounterCell()

    def cell(self, key: LabelValues = ()) -> CounterCell:
        return self.series(key)

    def add(self, key: LabelValues, amount: float = 1.0) -> None:
        self.series(key).value += amount

    def inc(self, amount: float = 1.0, label_value: str = "") -> None:
        """Shorthand for a counter with no label or one."""
        self.series((label_value,) if self.label_names else ()).value += amount

    def get(self, key: LabelValues = ()) -> float:
        cell = self._series.get(key)
        return 0.0 if cell is None else cell.value

    def snapshot(self) -> Family:
        return self._family(series=[[list(key), cell.value] for key, cell in self._series.items()])


class HistogramSeries:
    """One labelled series of a histogram: counts per bucket (last: above every bound)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le = "<=").
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value


class Histogram(_Labelled[HistogramSeries]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        buckets: Sequence[float],
        labels: Sequence[str] = (),
    ) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))

    def _new(self) -> HistogramSeries:
        return HistogramSeries(self.buckets)

    def observe(self, value: float, key: LabelValues = ()) -> None:
        self.series(key).observe(value)

    def count(self, key: LabelValues = ()) -> int:
        series = self._series.get(key)
        return 0 if series is None else sum(series.counts)

    def snapshot(self) -> Family:
        return self._family(
            buckets=list(self.buckets),
            series=[
                [list(key), list(series.counts), series.total]
                for key, series in self._series.items()
            ],
        )


def _check_labels(name: str, names: tuple[str, ...], values: LabelValues) -> None:
    """Once per new series: a value for each label, or the exposition would be wrong."""
    if len(values) != len(names):
        raise ValueError(f"{name} takes labels {names}, got {values}")


class Gauge:
    """A value read when the registry is snapshotted (one series, fixed labels)."""

    def __init__(
        self,
        name: str,
        help_text: str,
        read: Callable[[], float],
        labels: Mapping[str, str] | None = None,
        mode: GaugeMode = "sum",
    ) -> None:
        self.name = name
        self.help = help_text
        self.read = read
        self.labels = dict(labels or {})
        self.mode = mode

    def snapshot(self) -> Family:
        return {
            "type": "gauge",
            "help": self.help,
            "labels": list(self.labels),
            "mode": self.mode,
            "series": [[list(self.labels.values()), float(self.read())]],
        }


Metric = Counter | Histogram | Gauge


class Registry:
    """The metrics of one process, in the order they are exposed."""

    def __init__(self) -> None:
        self._metrics: list[Metric] = []

    def register(self, metric: Metric) -> None:
        """Add ``metric``; a gauge replaces its namesake (an app's lifespan run again
        reads its new resources), any other duplicate is a mistake."""
        for index, existing in enumerate(self._metrics):
            if existing.name == metric.name:
                if not (isinstance(existing, Gauge) and isinstance(metric, Gauge)):
                    raise ValueError(f"metric {metric.name} registered twice")
                self._metrics[index] = metric
                return
        self._metrics.append(metric)

    def snapshot(self) -> Snapshot:
        return {metric.name: metric.snapshot() for metric in self._metrics}


def merge(live: Iterable[Snapshot], retired: Iterable[Snapshot] = ()) -> Snapshot:
    """Add up the snapshots of a deployment's workers.

    Counters and histograms add up over every worker, retired ones included
    (what a dead worker counted stays counted). Gauges describe the present,
    so only live workers' count, combined by each gauge's ``mode``.
    Families keep the order of the first snapshot that has them.
    """
    merged: Snapshot = {}
    for snapshot, is_live in [*((s, True) for s in live), *((s, False) for s in retired)]:
        for name, family in snapshot.items():
            if family["type"] == "gauge" and not is_live:
                continue
            into = merged.get(name)
            if into is None:
                into = merged[name] = {**family, "series": []}
            if into["type"] != family["type"] or into.get("buckets") != family.get("buckets"):
                continue  # a worker running other code; its view cannot be added up
            _merge_series(into, family["series"])
    return merged


def _merge_series(into: Family, series: list[list[Any]]) -> None:
    by_key = {tuple(entry[0]): entry for entry in into["series"]}
    for entry in series:
        key = tuple(entry[0])
        existing = by_key.get(key)
        if existing is None:
            copied = list(entry)
            if into["type"] == "histogram":
                copied[1] = list(entry[1])
            by_key[key] = copied
            into["series"].append(copied)
        elif into["type"] == "histogram":
            existing[1] = [a + b for a, b in zip(existing[1], entry[1], strict=True)]
            existing[2] += entry[2]
        elif into["type"] == "gauge" and into.get("mode") == "max":
            existing[1] = max(existing[1], entry[1])
        else:
            existing[1] += entry[1]


def render(snapshot: Snapshot) -> str:
    """The text exposition format (version 0.0.4) of a snapshot."""
    lines: list[str] = []
    for name, family in snapshot.items():
        kind = family["type"]
        lines.append(f"# HELP {name} {_escape_help(family['help'])}")
        lines.append(f"# TYPE {name} {kind}")
        label_names: list[str] = family["labels"]
        for entry in sorted(family["series"], key=lambda entry: entry[0]):
            labels = list(zip(label_names, entry[0], strict=True))
            if kind != "histogram":
                lines.append(f"{name}{_labels(labels)} {_number(entry[1])}")
                continue
            cumulative = 0
            for bound, count in zip([*family["buckets"], None], entry[1], strict=True):
                cumulative += count
                le = "+Inf" if bound is None else _number(bound)
                lines.append(f"{name}_bucket{_labels([*labels, ('le', le)])} {cumulative}")
            lines.append(f"{name}_sum{_labels(labels)} {_number(entry[2])}")
            lines.append(f"{name}_count{_labels(labels)} {cumulative}")
    return "\n".join(lines) + "\n"


def _labels(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in pairs) + "}"


def _number(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return str(int(value)) if value.is_integer() else repr(value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")

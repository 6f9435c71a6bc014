"""Read ``/metrics`` with prometheus_client's own parser (a third-party check of our format)."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Samples", "parse", "scrape"]


class Samples:
    """Every sample of one scrape: ``value(name, **labels)``, ``total(name, **labels)``."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.types: dict[str, str] = {}
        self._samples: list[tuple[str, dict[str, str], float]] = []
        for family in text_string_to_metric_families(text):
            self.types[family.name] = family.type
            for sample in family.samples:
                self._samples.append((sample.name, dict(sample.labels), sample.value))

    def value(self, name: str, **labels: str) -> float:
        """The one sample ``name`` with exactly ``labels``; 0 if absent."""
        for sample_name, sample_labels, value in self._samples:
            if sample_name == name and sample_labels == labels:
                return value
        return 0.0

    def total(self, name: str, **labels: str) -> float:
        """The sum of every ``name`` sample whose labels include ``labels``
        (for a histogram's ``_bucket``, give ``le``)."""
        return sum(
            value
            for sample_name, sample_labels, value in self._samples
            if sample_name == name and labels.items() <= sample_labels.items()
        )

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, value) for sample, labels, value in self._samples if sample == name]


def parse(text: str) -> Samples:
    return Samples(text)


def scrape(
    base_url: str, headers: Mapping[str, str] | None = None, client: httpx.Client | None = None
) -> Samples:
    """One ``GET /metrics`` on a fresh connection unless ``client`` is given."""
    if client is not None:
        response = client.get(f"{base_url}/metrics", headers=headers)
    else:
        response = httpx.get(f"{base_url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return Samples(response.text)

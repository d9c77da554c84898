"""The real OpenTelemetry SDK, in memory, for the telemetry tests.

Each test gets its own providers (passed in ``Telemetry``), never the global
ones: a process can set those only once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from openticket_async import Telemetry

__all__ = ["Recorded"]


class Recorded:
    """An SDK tracer and meter provider recording in memory, and what they recorded."""

    def __init__(self, *, propagate: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.telemetry = Telemetry(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            propagate=propagate,
        )

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """The finished spans (named ``name``, if given), in the order they ended."""
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def metrics(self) -> dict[str, list[Any]]:
        """Every metric's data points by metric name (one collection)."""
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def every_attribute_value(self, metrics: dict[str, list[Any]]) -> Iterator[str]:
        """Every attribute value of every span, span event and of ``metrics``, as text."""
        for span in self.spans():
            yield from (str(v) for v in (span.attributes or {}).values())
            for event in span.events:
                yield from (str(v) for v in (event.attributes or {}).values())
            yield span.name
            yield str(span.status.description)
        for points in metrics.values():
            for point in points:
                yield from (str(v) for v in (point.attributes or {}).values())


def by_attribute(points: list[Any], key: str) -> dict[Any, Any]:
    """Data points keyed by the value of one attribute."""
    return {point.attributes.get(key): point for point in points}

"""OpenTelemetry, optional: where spans and metrics go, decided once per client or manager.

Theory of operation
-------------------
The SDK depends on ``opentelemetry-api`` only through the ``[otel]`` extra, and
emits nothing unless the application configured a provider (or passed one in
:class:`Telemetry`). :func:`resolve` makes that decision once, when a client or
a manager is built: it returns None when OpenTelemetry is not installed, turned
off, or has no provider, and the client and the manager then keep a None in an
attribute and test it with ``is not None`` on their paths. So "off" costs one
attribute check, and never imports an SDK module or makes an instrument a later
provider could wake up (the API's proxies would: instruments made on a proxy
meter start recording once a provider is set).

What is emitted, and its names, are fixed so that dashboards can be shared:
the HTTP client spans and ``http.client.request.duration`` follow
OpenTelemetry's HTTP client semantic conventions (``_observe``); the manager's
renewal spans and its ``openticket.*`` metrics are made here. No attribute ever
holds a token, a header or a full URL.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "DURATION_BUCKETS",
    "SCOPE",
    "HoldMetrics",
    "Providers",
    "Telemetry",
    "resolve",
]

#: The instrumentation scope of every span and metric.
SCOPE = "openticket_async"

#: The semantic conventions' advice for ``http.client.request.duration`` (seconds).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
#: Renewal lateness and time left: from "on time" to the whole 8-minute TTL.
_SECONDS_BUCKETS = (0.0, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 240.0, 480.0)


@attrs.frozen
class Telemetry:
    """Where the SDK sends OpenTelemetry spans and metrics (the ``[otel]`` extra).

    ``tracer_provider`` and ``meter_provider`` default to the global ones the
    application configured (``trace.set_tracer_provider``,
    ``metrics.set_meter_provider``); while there is none, nothing is emitted.
    ``propagate`` adds the current trace context (``traceparent``) to requests to
    OpenTicket: off by default, since it tells a third party about your traces.
    ``enabled=False`` turns both off whatever is configured.

    The choice is made once, when the client or manager is built: configure
    OpenTelemetry before building them.
    """

    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    propagate: bool = False
    enabled: bool = True


@attrs.frozen
class Providers:
    """The tracer and meter in use (None: that signal is off), as :func:`resolve` found them."""

    tracer: Tracer | None
    meter: Meter | None
    propagate: bool
    meter_provider: MeterProvider | None


def resolve(telemetry: Telemetry | None) -> Providers | None:
    """The tracer and meter ``telemetry`` asks for, or None when nothing is to be emitted.

    Raises nothing: without opentelemetry-api installed, telemetry is simply off.
    """
    telemetry = Telemetry() if telemetry is None else telemetry
    if not telemetry.enabled:
        return None
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        return None
    tracer_provider = telemetry.tracer_provider
    if tracer_provider is None:
        tracer_provider = trace.get_tracer_provider()
        if isinstance(tracer_provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            tracer_provider = None
    meter_provider = telemetry.meter_provider
    if meter_provider is None:
        meter_provider = metrics.get_meter_provider()
        # the API's proxy provider is not public: it is the one a fresh process has
        if isinstance(meter_provider, metrics.NoOpMeterProvider) or (
            type(meter_provider).__name__ == "_ProxyMeterProvider"
        ):
            meter_provider = None
    if tracer_provider is None and meter_provider is None:
        return None
    return Providers(
        tracer=None if tracer_provider is None else tracer_provider.get_tracer(SCOPE, __version__),
        meter=None if meter_provider is None else meter_provider.get_meter(SCOPE, __version__),
        propagate=telemetry.propagate,
        meter_provider=meter_provider,
    )


class _Gauges:
    """The observable gauges of one meter, fed by every manager that uses it.

    One set per meter: an SDK hands back the first instrument of a name, so a
    second manager's callback would be lost if each made its own.
    """

    def __init__(self, meter: Meter) -> None:
        self.sources: weakref.WeakSet[Any] = weakref.WeakSet()
        meter.create_observable_gauge(
            "openticket.holds",
            callbacks=[self._holds],
            unit="{hold}",
            description="Live holds kept by the reservation managers, by state.",
        )
        meter.create_observable_gauge(
            "openticket.units.lingering",
            callbacks=[self._lingering],
            unit="{unit}",
            description="Units the server may still hold for us that no live hold counts on.",
        )

    def _readings(self) -> Iterator[tuple[dict[str, int], int]]:
        for manager in list(self.sources):
            stats = manager.stats()
            yield {state.value: n for state, n in stats.holds.items()}, stats.lingering_units

    def _holds(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        totals: dict[str, int] = {}
        for by_state, _lingering in self._readings():
            for state, count in by_state.items():
                totals[state] = totals.get(state, 0) + count
        return [Observation(n, {"openticket.hold.state": s}) for s, n in totals.items()]

    def _lingering(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        return [Observation(sum(lingering for _by_state, lingering in self._readings()))]


_GAUGES: weakref.WeakKeyDictionary[Any, _Gauges] = weakref.WeakKeyDictionary()


class HoldMetrics:
    """The manager's spans and metrics: renewals, lost holds, shared-store claims (takeovers
    and lease lapses among them) and outages.

    Made by the manager only when :func:`resolve` found a provider. ``source``
    (the manager) feeds the observable gauges through its ``stats()`` and is
    held weakly.
    """

    def __init__(self, providers: Providers, source: object) -> None:
        self._tracer = providers.tracer
        meter = providers.meter
        self._meter = meter is not None
        if meter is None:
            return
        gauges = _GAUGES.get(providers.meter_provider)
        if gauges is None:
            gauges = _GAUGES[providers.meter_provider] = _Gauges(meter)
        gauges.sources.add(source)
        self._renewals = meter.create_counter(
            "openticket.renewals", unit="{renewal}", description="Renewal reserves, by outcome."
        )
        self._lateness = meter.create_histogram(
            "openticket.renewal.lateness", unit="s",
            description="How late renewal reserves went out after their planned time.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._time_left = meter.create_histogram(
            "openticket.renewal.time_left", unit="s",
            description="Time left on the old reservation when its renewal was sent.",
            explicit_bucket_boundaries_advisory=_SECONDS_BUCKETS,
        )
        self._lost = meter.create_counter(
            "openticket.holds.lost", unit="{hold}", description="Holds lost, by reason."
        )
        self._claims = meter.create_counter(
            "openticket.store.claims", unit="{claim}",
            description="Due actions claimed from a shared store.",
        )
        self._takeovers = meter.create_counter(
            "openticket.store.takeovers", unit="{hold}",
            description="Holds claimed from a shared store whose previous claim, by another"
            " worker, was never written back and whose lease had run out.",
        )
        self._lapses = meter.create_counter(
            "openticket.store.lease_lapses", unit="{hold}",
            description="Holds claimed from a shared store whose previous claim was never"
            " written back and whose lease had run out, whoever held it.",
        )
        self._unavailable = meter.create_counter(
            "openticket.store.unavailable", unit="{outage}",
            description="Periods during which the shared store could not be reached.",
        )

    @contextlib.contextmanager
    def renewal(
        self, hold_id: str, cart_id: str, lateness: float, time_left: float
    ) -> Iterator[Callable[[str], None]]:
        """Span one renewal (the INTERNAL ``openticket.renewal``, parent of its reserve).

        Yields the function that records its outcome (``renewed``, ``failed``,
        ``sold_out``, ``rate_limited``, ``timed_out`` or ``error``).
        """
        outcome: str | None = None  # stays None for a renewal cancelled (the manager closed)

        def record(result: str) -> None:
            nonlocal outcome
            outcome = result

        span: Span | None = None
        try:
            if self._tracer is None:
                yield record
            else:
                from opentelemetry.trace import SpanKind, use_span

                span = self._tracer.start_span(
                    "openticket.renewal",
                    kind=SpanKind.INTERNAL,
                    attributes={"openticket.hold_id": hold_id, "openticket.cart_id": cart_id},
                )
                with use_span(span, end_on_exit=False, record_exception=False):
                    yield record
        finally:
            if span is not None:
                if outcome is not None:
                    span.set_attribute("openticket.renewal.outcome", outcome)
                span.end()
            if self._meter and outcome is not None:
                self._renewals.add(1, {"openticket.renewal.outcome": outcome})
                self._lateness.record(lateness)
                if outcome == "renewed":
                    self._time_left.record(time_left)

    def lost(self, reason: str) -> None:
        """Count a hold lost for ``reason``."""
        if self._meter:
            self._lost.add(1, {"openticket.lost.reason": reason})

    def store_claims(self, claims: int, takeovers: int, lapses: int) -> None:
        """Count the due actions one pass claimed from a shared store, and how many of
        them were takeovers and lease lapses (see ``stores.Due``)."""
        if self._meter:
            self._claims.add(claims)
            if takeovers:
                self._takeovers.add(takeovers)
            if lapses:
                self._lapses.add(lapses)

    def store_unavailable(self) -> None:
        """Count the start of an outage of the shared store."""
        if self._meter:
            self._unavailable.add(1)

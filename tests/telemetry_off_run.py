"""Run by tests/test_telemetry_off.py in a fresh interpreter: a client and a manager
built with no OpenTelemetry provider, then a provider set, then more work.

Prints one JSON line: the SDK modules imported before the provider was set, and
what that provider recorded of the work done after it was set. With
``--no-otel`` opentelemetry cannot be imported at all.
"""

from __future__ import annotations

import asyncio
import json
import sys


async def main(no_otel: bool) -> None:
    if no_otel:
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import fails
    from openticket_async import BearerToken, HoldPolicy, OpenTicketClient, ReservationManager
    from openticket_async.testing import FakeClock, FakeOpenTicket

    clock = FakeClock()
    async with FakeOpenTicket(clock) as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop, stock=10)
        token = fake.issue_token().access_token
        async with (
            OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts, clock=clock) as client,
            ReservationManager(client, policy=HoldPolicy(renew_jitter=0)) as manager,
        ):
            await manager.cart(shop.guid).add(ticket.guid, quantity=2)
            await clock.advance(419)  # one renewal each
            sdk_before = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk"))
            spans, points = 0, 0
            if not no_otel:
                from opentelemetry import metrics, trace
                from opentelemetry.sdk.metrics import MeterProvider
                from opentelemetry.sdk.metrics.export import InMemoryMetricReader
                from opentelemetry.sdk.trace import TracerProvider
                from opentelemetry.sdk.trace.export import SimpleSpanProcessor
                from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
                    InMemorySpanExporter,
                )

                exporter, reader = InMemorySpanExporter(), InMemoryMetricReader()
                provider = TracerProvider()
                provider.add_span_processor(SimpleSpanProcessor(exporter))
                trace.set_tracer_provider(provider)
                metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
            await manager.cart(shop.guid).add(ticket.guid)  # more work, provider set now
            await clock.advance(419)
            if not no_otel:
                spans = len(exporter.get_finished_spans())
                data = reader.get_metrics_data()
                points = 0 if data is None else sum(
                    len(m.data.data_points)
                    for rm in data.resource_metrics
                    for sm in rm.scope_metrics
                    for m in sm.metrics
                )
    print(json.dumps({"sdk_before": sdk_before, "spans": spans, "points": points,
                      "requests": len(fake.requests)}))


if __name__ == "__main__":
    asyncio.run(main("--no-otel" in sys.argv))

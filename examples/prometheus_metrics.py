"""The SDK's metrics on a Prometheus ``/metrics`` page (OpenTelemetry SDK + Prometheus reader).

The SDK itself depends on ``opentelemetry-api`` only (the ``[otel]`` extra); the
application brings the SDK and an exporter. Here that is the Prometheus reader::

    pip install 'openticket-async[otel]' opentelemetry-sdk opentelemetry-exporter-prometheus
    OPENTICKET_TOKEN=... python examples/prometheus_metrics.py   # then scrape :9464/metrics

:func:`meter_provider` is the whole setup: a ``MeterProvider`` whose reader is
the Prometheus one. Make it the global provider before building the client and
the manager (they decide once, when built, whether anyone listens), or pass it
in ``Telemetry(meter_provider=...)``. :func:`metrics_app` serves the page with
aiohttp, which the SDK brings anyway; any web framework can serve
``prometheus_client.generate_latest()`` instead.

A counter shows on the page from its first count: with a shared store (a
``RedisStore``) the ``openticket_store_*`` counters appear once a claim,
a takeover or an outage happened, not before.
"""

from __future__ import annotations

import asyncio
import os

from aiohttp import web
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from openticket_async import BearerToken, OpenTicketClient, ReservationManager

TOKEN_VARIABLE = "OPENTICKET_TOKEN"  # noqa: S105 (the variable's name, not a token)
PORT = 9464  # Prometheus' customary port for an exporter of this kind


def meter_provider() -> tuple[MeterProvider, PrometheusMetricReader]:
    """A MeterProvider whose metrics show on the ``/metrics`` page, and its reader.

    The reader registers with prometheus_client's default registry;
    ``provider.shutdown()`` takes it off again.
    """
    reader = PrometheusMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


def metrics_app() -> web.Application:
    """An aiohttp application serving ``GET /metrics`` in Prometheus' text format."""

    async def scrape(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app


async def main() -> None:
    """Serve /metrics while a manager keeps the carts the application makes."""
    provider, _reader = meter_provider()
    metrics.set_meter_provider(provider)  # before the client and manager are built
    runner = web.AppRunner(metrics_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", PORT).start()
    try:
        async with (
            OpenTicketClient(auth=BearerToken(os.environ[TOKEN_VARIABLE])) as client,
            ReservationManager(client),
        ):
            await asyncio.Event().wait()  # your application's carts live here
    finally:
        await runner.cleanup()
        provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())

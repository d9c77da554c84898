"""What observability costs: per reserve and per renewal, with it off and on.

Per reserve: three clients reserve the same ticket on the same fake server (a
separate process, 127.0.0.1) at concurrency 16, in alternating rounds: ``off``
(no OpenTelemetry provider: the default), ``hooks`` (a plain ``on_request`` and
``on_response``), and ``otel`` (the real SDK: a tracer provider whose spans go
through a SimpleSpanProcessor to an exporter that drops them, and a meter
provider with an in-memory reader). Client CPU per request is this process's
``time.process_time``; ratios are the median of the per-round paired ratios
against ``off``.

Per renewal: a ReservationManager renews ``--holds`` holds once on a FakeClock
against the in-process fake server, with telemetry off and on; the figure is
this process's CPU per renewal (server included, the same on both sides), so
the difference of the two is what the renewal span and metrics add.

    python benchmarks/telemetry_overhead.py            # full run, writes results/
    python benchmarks/telemetry_overhead.py --quick    # seconds; asserts nothing
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import _common as c
import _raw
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from openticket_async import Telemetry

NAME = "telemetry_overhead"
CONCURRENCY = 16


class _Dropped(SpanExporter):
    """Takes every span and keeps none: the SDK's own work, without an exporter's I/O."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def sdk_telemetry() -> Telemetry:
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(_Dropped()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return Telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)


def _hook(*args: object) -> None:
    """A request hook that does nothing: the cost of calling one."""


async def per_reserve(args: Any, server: c.ServerProcess) -> dict[str, Any]:
    from openticket_async import BearerToken, Hosts, OpenTicketClient

    options: dict[str, dict[str, Any]] = {
        "off": {},
        "hooks": {"on_request": _hook, "on_response": _hook},
        "otel": {"telemetry": sdk_telemetry()},
    }
    clients = {
        name: OpenTicketClient(auth=BearerToken(server.token), hosts=Hosts(**server.hosts), **extra)
        for name, extra in options.items()
    }
    shop, ticket = server.shop, server.tickets[0]
    per_round, rounds, warmup = (200, 1, 50) if args.quick else (args.requests, args.rounds, 500)
    cpu: dict[str, list[float]] = {name: [] for name in clients}
    for client in clients.values():
        await _raw.drive(lambda client=client: client.reserve_ticket(shop, ticket), warmup,
                         CONCURRENCY)
    for r in range(rounds):
        order = list(clients) if r % 2 == 0 else list(reversed(clients))
        for name in order:
            client = clients[name]
            with c.settled_gc():
                got = await _raw.drive(lambda client=client: client.reserve_ticket(shop, ticket),
                                       per_round, CONCURRENCY)
            cpu[name].append(got["cpu"] / per_round * 1e6)
    for client in clients.values():
        await client.aclose()
    out: dict[str, Any] = {"concurrency": CONCURRENCY, "requests_per_round": per_round,
                           "rounds": rounds}
    for name, values in cpu.items():
        out[name] = {"client_cpu_us_per_request": round(statistics.median(values), 2)}
        if name != "off":
            paired = [c.ratio(v, o) for v, o in zip(values, cpu["off"], strict=True)]
            out[name]["cpu_ratio_vs_off_paired_median"] = round(statistics.median(paired), 3)
    return out


async def per_renewal(args: Any) -> dict[str, Any]:
    from openticket_async import BearerToken, HoldPolicy, OpenTicketClient, ReservationManager
    from openticket_async.testing import FakeClock, FakeOpenTicket

    holds = 200 if args.quick else args.holds
    out: dict[str, Any] = {"holds": holds}
    for name, telemetry in (("off", None), ("otel", sdk_telemetry()), ("off_again", None)):
        clock = FakeClock()
        async with FakeOpenTicket(clock) as fake:
            shop = fake.add_shop()
            ticket = fake.add_ticket(shop, stock=holds * 3)
            token = fake.issue_token().access_token
            async with (
                OpenTicketClient(auth=BearerToken(token), hosts=fake.hosts, clock=clock,
                                 telemetry=telemetry) as client,
                ReservationManager(client, policy=HoldPolicy(renew_jitter=0),
                                   telemetry=telemetry) as manager,
            ):
                await manager.cart(shop.guid).add(ticket.guid, quantity=min(holds, 100))
                for _ in range(holds // 100 - 1):
                    await manager.cart(shop.guid).add(ticket.guid, quantity=100)
                with c.settled_gc():
                    cpu0 = time.process_time()
                    await clock.advance(419)  # every hold renews once
                    cpu = time.process_time() - cpu0
        out[name] = {"process_cpu_us_per_renewal": round(cpu / holds * 1e6, 1)}
    off = (out["off"]["process_cpu_us_per_renewal"]
           + out["off_again"]["process_cpu_us_per_renewal"]) / 2
    out["otel_minus_off_us_per_renewal"] = round(out["otel"]["process_cpu_us_per_renewal"] - off, 1)
    return out


def render(result: dict[str, Any]) -> str:
    reserve, renewal = result["per_reserve"], result["per_renewal"]
    rows = [[name, reserve[name]["client_cpu_us_per_request"],
             reserve[name].get("cpu_ratio_vs_off_paired_median", 1.0)]
            for name in ("off", "hooks", "otel")]
    text = c.table(["per reserve (conc. 16)", "client CPU us", "vs off"], rows)
    rows = [[name, renewal[name]["process_cpu_us_per_renewal"]]
            for name in ("off", "otel", "off_again")]
    return text + "\n\n" + c.table([f"per renewal ({renewal['holds']} holds)", "CPU us"], rows)


def main() -> None:
    p = c.parser(__doc__.splitlines()[0], default_loop="asyncio")
    p.add_argument("--requests", type=int, default=4000, help="reserves per side per round")
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--holds", type=int, default=2000, help="holds renewed per side")
    args = p.parse_args()
    c.pin_cpus(not args.no_pin)

    async def run() -> dict[str, Any]:
        with c.fake_server() as server:
            reserve = await per_reserve(args, server)
        return {"per_reserve": reserve, "per_renewal": await per_renewal(args)}

    result = c.run_on("asyncio", run)
    c.emit(NAME, result, render(result), args)


if __name__ == "__main__":
    main()

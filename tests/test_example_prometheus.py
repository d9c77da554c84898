"""examples/prometheus_metrics.py: its /metrics page, scraped over 127.0.0.1, shows the metrics.

A manager renews two holds on the fake server and FakeClock; one ticket is then
sold out for good (its hold is lost). The page is served by the example's aiohttp
app on a real socket and read with a plain HTTP GET, as Prometheus would.

The shared store's counters show once they count something (OpenTelemetry
exports a counter from its first add), so a second run has two workers on a
real redis-server: one closes with its renewals on the wire, the other takes
them over, then Redis is down for a moment.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from conftest import RedisServer
from prometheus_metrics import meter_provider, metrics_app

from openticket_async import (
    BearerToken,
    HoldPolicy,
    HoldState,
    OpenTicketClient,
    ReservationManager,
    Telemetry,
)
from openticket_async.stores.redis import RedisStore
from openticket_async.testing import FakeClock, FakeOpenTicket

pytestmark = pytest.mark.asyncio

METRICS = (
    "http_client_request_duration_seconds_count",
    "openticket_holds{",
    "openticket_renewals_total{",
    "openticket_renewal_lateness_seconds_count",
    "openticket_renewal_time_left_seconds_count",
    "openticket_holds_lost_total{",
    "openticket_units_lingering",
)
STORE_METRICS = (
    "openticket_store_claims_total",
    "openticket_store_takeovers_total",
    "openticket_store_lease_lapses_total",
    "openticket_store_unavailable_total",
)


@pytest_asyncio.fixture
async def telemetry() -> AsyncIterator[Telemetry]:
    provider, _reader = meter_provider()
    yield Telemetry(meter_provider=provider)
    provider.shutdown()  # its reader leaves prometheus_client's registry


@pytest_asyncio.fixture
async def page() -> AsyncIterator[str]:
    runner = web.AppRunner(metrics_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/metrics"
    await runner.cleanup()


async def scrape(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        assert response.content_type == "text/plain"
        return await response.text()


async def test_the_metrics_page_shows_the_sdks_metrics(
    openticket_fake: FakeOpenTicket,
    openticket_clock: FakeClock,
    telemetry: Telemetry,
    page: str,
) -> None:
    shop = openticket_fake.add_shop()
    plenty = openticket_fake.add_ticket(shop, stock=5)
    scarce = openticket_fake.add_ticket(shop, stock=1)  # no unit for the overlap
    token = openticket_fake.issue_token().access_token

    async with (
        OpenTicketClient(auth=BearerToken(token), hosts=openticket_fake.hosts,
                         clock=openticket_clock, telemetry=telemetry) as client,
        ReservationManager(client, policy=HoldPolicy(renew_jitter=0),
                           telemetry=telemetry) as manager,
    ):
        cart = manager.cart(shop.guid)
        [kept] = await cart.add(plenty.guid)
        [lost] = await cart.add(scarce.guid)
        await openticket_clock.advance(419)  # renewals: one renewed, one sold out
        openticket_fake.faults.status("reserve", 409, times=1)  # and after the drop
        await openticket_clock.advance(70)
        assert (kept.state, lost.state) == (HoldState.ACTIVE, HoldState.LOST)
        text = await scrape(page)
    for name in METRICS:
        assert name in text, name
    assert 'openticket_renewals_total{openticket_renewal_outcome="renewed"' in text
    assert 'openticket_holds_lost_total{openticket_lost_reason="sold_out"' in text
    assert token not in text


@pytest.mark.redis
@pytest.mark.realtime  # the session's redis-server is stopped and started again
async def test_the_metrics_page_shows_a_shared_stores_counters(
    openticket_fake: FakeOpenTicket,
    openticket_clock: FakeClock,
    telemetry: Telemetry,
    page: str,
    redis_server: RedisServer,
    redis_url: str,
    redis_prefix: str,
) -> None:
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    token = openticket_fake.issue_token().access_token
    policy = HoldPolicy(renew_jitter=0)

    def worker(client: OpenTicketClient) -> ReservationManager:
        store = RedisStore(redis_url, prefix=redis_prefix, policy=policy)
        return ReservationManager(client, policy=policy, store=store, telemetry=telemetry)

    async with OpenTicketClient(auth=BearerToken(token), hosts=openticket_fake.hosts,
                                clock=openticket_clock, telemetry=telemetry) as client:
        async with worker(client) as leaving:
            await leaving.cart(shop.guid).add(ticket.guid, quantity=2)
            openticket_fake.faults.delay("reserve", 30.0, times=2)  # renewals on the wire
            await openticket_clock.advance(419)
        async with worker(client):  # takes the two renewals over
            await openticket_clock.advance(1)
            redis_server.stop()
            await openticket_clock.advance(1)
            redis_server.start()
            await openticket_clock.advance(1)
            text = await scrape(page)
    for name in STORE_METRICS:
        assert name in text, name
    assert sample(text, "openticket_store_takeovers_total") == 2
    assert sample(text, "openticket_store_lease_lapses_total") == 2
    assert sample(text, "openticket_store_unavailable_total") == 1


def sample(text: str, name: str) -> float:
    """The value of the one sample of ``name`` on the page (its labels are the scope's)."""
    [value] = [line.rpartition(" ")[2] for line in text.splitlines()
               if line.startswith(name + "{")]
    return float(value)

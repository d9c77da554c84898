"""OpenTelemetry spans and metrics on the real SDK, the fake server and FakeClock.

The scripted run: three holds renewed twice each, then one ticket sold out in
the overlap (AT_RISK) and again at its try after the drop (Lost). Times are
virtual: the policy renews 60 s before the local deadline (TTL 480 s, margin 2 s).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.trace import SpanKind, StatusCode
from telemetry_helpers import Recorded, by_attribute

from openticket_async import (
    BearerToken,
    HoldPolicy,
    HoldState,
    OpenTicketClient,
    ReservationManager,
)
from openticket_async.testing import FakeClock, FakeOpenTicket

pytestmark = pytest.mark.asyncio

NO_JITTER = HoldPolicy(renew_jitter=0)
RESERVE = "GET /{shop}/reserve/ticket/{ticket}"


class Run:
    """What the scripted run left behind; ``metrics`` were collected just after the Lost."""

    def __init__(self, recorded: Recorded, token: str, holds: list[Any], stats: Any) -> None:
        self.recorded = recorded
        self.token = token
        self.holds = holds
        self.stats = stats
        self.metrics = recorded.metrics()


@pytest_asyncio.fixture
async def scripted(
    openticket_fake: FakeOpenTicket, openticket_clock: FakeClock
) -> AsyncIterator[Run]:
    recorded = Recorded()
    shop = openticket_fake.add_shop()
    tickets = [openticket_fake.add_ticket(shop, stock=2) for _ in range(3)]
    token = openticket_fake.issue_token().access_token
    rival_token = openticket_fake.issue_token().access_token
    async with (
        OpenTicketClient(
            auth=BearerToken(token), hosts=openticket_fake.hosts, clock=openticket_clock,
            telemetry=recorded.telemetry,
        ) as client,
        OpenTicketClient(  # a rival buyer: no telemetry of ours
            auth=BearerToken(rival_token), hosts=openticket_fake.hosts, clock=openticket_clock
        ) as rival,
        ReservationManager(client, policy=NO_JITTER, telemetry=recorded.telemetry) as manager,
    ):
        cart = manager.cart(shop.guid)
        holds = [(await cart.add(ticket.guid))[0] for ticket in tickets]
        await openticket_clock.advance(419)  # first renewal of each (at 418 s)
        await openticket_clock.advance(418)  # second renewal of each (at 836 s)
        await openticket_clock.advance(64)  # the overlap's old unit dropped at 898 s
        await rival.reserve_ticket(shop.guid, tickets[0].guid)  # the last unit of ticket 0
        await openticket_clock.advance(354)  # third renewal (1254 s): ticket 0 is sold out
        assert holds[0].state is HoldState.AT_RISK
        openticket_fake.faults.status("reserve", 409, times=1)  # and again after the drop
        await openticket_clock.advance(64)  # the try after the drop (1318 s)
        assert holds[0].state is HoldState.LOST
        run = Run(recorded, token, holds, manager.stats())
    yield run


async def test_each_reserve_is_one_client_span_with_the_http_attributes(scripted: Run) -> None:
    reserves = scripted.recorded.spans(RESERVE)
    assert len(reserves) == 3 + 3 + 3 + 3 + 1  # adds, two rounds, third round, try after drop
    span = reserves[0]
    assert span.kind is SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["url.template"] == "/{shop}/reserve/ticket/{ticket}"
    assert attributes["server.address"] == "127.0.0.1"
    assert isinstance(attributes["server.port"], int)
    assert attributes["http.response.status_code"] == 200
    assert {"openticket.shop_guid", "openticket.ticket_guid"} <= attributes.keys()
    assert "error.type" not in attributes


async def test_a_sold_out_reserve_span_is_an_error_with_its_status(scripted: Run) -> None:
    refused = [
        s for s in scripted.recorded.spans(RESERVE)
        if (s.attributes or {}).get("http.response.status_code") == 409
    ]
    assert len(refused) == 2  # the third renewal and the try after the drop, both ticket 0
    for span in refused:
        assert span.status.status_code is StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "409"
        assert (span.attributes or {})["openticket.ticket_guid"] == scripted.holds[0].ticket_guid


async def test_each_renewal_is_an_internal_span_parent_of_its_reserve(scripted: Run) -> None:
    renewals = scripted.recorded.spans("openticket.renewal")
    assert len(renewals) == 10
    reserves = scripted.recorded.spans(RESERVE)
    parents = {s.parent.span_id for s in reserves if s.parent is not None}
    for renewal in renewals:
        assert renewal.kind is SpanKind.INTERNAL
        assert renewal.context is not None
        assert renewal.context.span_id in parents
        attributes = dict(renewal.attributes or {})
        assert attributes["openticket.cart_id"] == scripted.holds[0].cart_id
        assert attributes["openticket.hold_id"] in {hold.id for hold in scripted.holds}
    outcomes = [(r.attributes or {})["openticket.renewal.outcome"] for r in renewals]
    assert sorted(outcomes) == ["renewed"] * 8 + ["sold_out"] * 2


async def test_the_reserves_of_adds_have_no_renewal_parent(scripted: Run) -> None:
    first_three = scripted.recorded.spans(RESERVE)[:3]
    assert [span.parent for span in first_three] == [None, None, None]


async def test_the_renewal_counter_counts_each_outcome_exactly(scripted: Run) -> None:
    points = by_attribute(scripted.metrics["openticket.renewals"],
                          "openticket.renewal.outcome")
    assert {outcome: point.value for outcome, point in points.items()} == {
        "renewed": 8, "sold_out": 2,
    }


async def test_the_request_duration_histogram_counts_every_request(scripted: Run) -> None:
    points = scripted.metrics["http.client.request.duration"]
    by_status = by_attribute(points, "http.response.status_code")
    assert {status: point.count for status, point in by_status.items()} == {200: 11, 409: 2}
    assert by_status[409].attributes["error.type"] == "409"
    assert by_status[200].attributes["url.template"] == "/{shop}/reserve/ticket/{ticket}"
    # the duration metric keeps to low-cardinality attributes: no GUIDs
    assert "openticket.ticket_guid" not in by_status[200].attributes


async def test_lateness_and_time_left_are_recorded_per_renewal(scripted: Run) -> None:
    metrics = scripted.metrics
    [lateness] = metrics["openticket.renewal.lateness"]
    [time_left] = metrics["openticket.renewal.time_left"]
    assert lateness.count == 10
    assert time_left.count == 8  # only a renewed reservation has a time left to report
    assert time_left.min == pytest.approx(60.0)  # sent 60 s before the old one's deadline


async def test_the_lost_hold_is_counted_with_its_reason(scripted: Run) -> None:
    [lost] = scripted.metrics["openticket.holds.lost"]
    assert lost.value == 1
    assert lost.attributes == {"openticket.lost.reason": "sold_out"}


async def test_the_holds_gauge_reports_live_holds_by_state(scripted: Run) -> None:
    points = by_attribute(scripted.metrics["openticket.holds"], "openticket.hold.state")
    assert {state: point.value for state, point in points.items()} == {
        "active": 2, "renewing": 0, "at_risk": 0,
    }


async def test_the_lingering_gauge_counts_the_old_units_of_a_renewal(
    openticket_fake: FakeOpenTicket, openticket_clock: FakeClock
) -> None:
    recorded = Recorded()
    shop = openticket_fake.add_shop()
    ticket = openticket_fake.add_ticket(shop, stock=5)
    token = openticket_fake.issue_token().access_token
    async with (
        OpenTicketClient(
            auth=BearerToken(token), hosts=openticket_fake.hosts, clock=openticket_clock
        ) as client,
        ReservationManager(client, policy=NO_JITTER, telemetry=recorded.telemetry) as manager,
    ):
        await manager.cart(shop.guid).add(ticket.guid, quantity=2)
        await openticket_clock.advance(419)  # renewed: the two old units run until their drop
        [lingering] = recorded.metrics()["openticket.units.lingering"]
    assert lingering.value == 2


async def test_no_token_header_or_url_appears_in_any_attribute(scripted: Run) -> None:
    for value in scripted.recorded.every_attribute_value(scripted.metrics):
        assert scripted.token not in value
        assert "Bearer" not in value
        assert "://" not in value
        assert "?" not in value

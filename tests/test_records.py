"""Event records: the one flat form of a hold event, shared by the store stream and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from openticket_async import HoldPolicy, Order, Reservation, TicketUnavailable
from openticket_async._events import (
    AtRisk,
    CheckedOut,
    Expired,
    Expiring,
    HoldEvent,
    Lost,
    Released,
    RenewalFailed,
    Renewed,
)
from openticket_async._hold import Hold, HoldState
from openticket_async._records import RECORD_KEYS, event_record
from openticket_async.cli._output import RunView
from openticket_async.stores.shared import decode_event, encode_event
from openticket_async.testing import FakeClock

SHOP = "11111111-1111-1111-1111-111111111111"
TICKET = "22222222-2222-2222-2222-222222222222"
OLD = "aaaaaaaa-0000-0000-0000-000000000000"
NEW = "bbbbbbbb-0000-0000-0000-000000000000"
MOMENT = datetime(2024, 1, 1, tzinfo=UTC)


def make_reservation(guid: str) -> Reservation:
    return Reservation(
        guid=guid,
        shop_guid=SHOP,
        ticket_guid=TICKET,
        event_date_guid=None,
        products=(),
        reserved_at=MOMENT,
        expires_at=MOMENT,
        deadline=480.0,
    )


def make_hold(state: HoldState = HoldState.ACTIVE) -> Hold:
    return Hold(
        id="h1",
        cart_id="c1",
        shop_guid=SHOP,
        ticket_guid=TICKET,
        reservation=make_reservation(NEW),
        created_at=0.0,
        state=state,
        renewals=2,
    )


def one_of_each_kind() -> list[HoldEvent]:
    hold = make_hold()
    error = TicketUnavailable("sold_out", status=409, method="GET", path="/shop/x")
    return [
        Expiring(hold, 30.0, 0.0),
        Renewed(hold, 470.0, 0.25, old=make_reservation(OLD), new=make_reservation(NEW)),
        RenewalFailed(hold, 50.0, 0.0, error=error, will_retry=True),
        AtRisk(hold, 50.0, 0.0, reason="sold_out"),
        Lost(hold, 0.0, 0.0, reason="sold_out"),
        Expired(hold, 0.0, 0.0, reason="max_hold"),
        Released(hold, 300.0, 0.0),
        CheckedOut(hold, 300.0, 0.0, order=Order(guid="o-1")),
    ]


def test_a_record_names_the_hold_and_where_it_stands() -> None:
    record = event_record(Expiring(make_hold(HoldState.AT_RISK), 30.0, 0.5))
    assert record == {
        "type": "Expiring",
        "hold": "h1",
        "cart": "c1",
        "ticket_guid": TICKET,
        "reservation": NEW,
        "state": "AT_RISK",
        "renewals": 2,
        "time_left": 30.0,
        "lateness": 0.5,
    }


def test_a_renewal_record_names_the_old_and_the_new_reservation() -> None:
    hold = make_hold()
    record = event_record(
        Renewed(hold, 470.0, 0.0, old=make_reservation(OLD), new=make_reservation(NEW))
    )
    assert (record["old_reservation"], record["new_reservation"]) == (OLD, NEW)


def test_a_failed_renewal_record_has_the_error_class_status_and_a_redacted_message() -> None:
    leaky = RuntimeError("proxy said: Authorization: Bearer abc.def-123")
    record = event_record(RenewalFailed(make_hold(), 50.0, 0.0, error=leaky, will_retry=False))
    assert (record["error"], record["status"], record["will_retry"]) == (
        "RuntimeError",
        None,
        False,
    )
    assert "abc.def-123" not in record["message"]
    assert record["message"].startswith("proxy said: Authorization: Bearer ")


def test_the_reason_of_at_risk_lost_and_expired_is_in_the_record() -> None:
    hold = make_hold()
    records = [
        event_record(AtRisk(hold, 5.0, 0.0, reason="deadline")),
        event_record(Lost(hold, 0.0, 0.0, reason="sold_out")),
        event_record(Expired(hold, 0.0, 0.0, reason="idle")),
    ]
    assert [r["reason"] for r in records] == ["deadline", "sold_out", "idle"]


@pytest.mark.parametrize("event", one_of_each_kind(), ids=lambda e: type(e).__name__)
def test_every_kind_makes_a_json_ready_record_with_the_common_keys(event: HoldEvent) -> None:
    record = event_record(event)
    assert record.keys() >= RECORD_KEYS
    assert json.loads(json.dumps(record, allow_nan=False)) == record


@pytest.mark.parametrize("event", one_of_each_kind(), ids=lambda e: type(e).__name__)
def test_the_store_stream_carries_the_event_record(event: HoldEvent) -> None:
    text = encode_event(event, MOMENT, "worker-1")
    stamped = json.loads(text)
    assert {k: v for k, v in stamped.items() if k not in ("at", "origin")} == event_record(event)
    watched = decode_event("1-0", text)
    added = {k: v for k, v in event_record(event).items() if k not in RECORD_KEYS}
    assert (watched.kind, watched.state, dict(watched.detail)) == (
        type(event).__name__,
        event.hold.state,
        added,
    )


@pytest.mark.parametrize("event", one_of_each_kind(), ids=lambda e: type(e).__name__)
def test_the_cli_shows_the_event_record_with_its_label(event: HoldEvent) -> None:
    view = RunView(FakeClock(), HoldPolicy(), 480.0)
    view.track([event.hold], "Front row")
    shown = view.hold_record(event)
    assert shown["ticket"] == "Front row"
    assert {k: v for k, v in shown.items() if k in event_record(event)} == event_record(event)

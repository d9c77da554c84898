"""The shared stores' hold record: records of earlier versions load, new ones read the same.

A record of the SDK's own values is written by orjson (the ``fast`` extra, in the
``test`` extra); it must hold json's values, and anything else must go to json."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import attrs
import pytest

from openticket_async._exceptions import InvalidArgument
from openticket_async._hold import Hold, HoldState
from openticket_async._json import dump, dump_own
from openticket_async._models import EMPTY_RAW, Product, Reservation
from openticket_async.stores.shared import _codec
from openticket_async.stores.shared._codec import encode_hold, new_hold

OFFSET = 1_700_000_000.0
MOMENT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: A record as the previous release wrote it (format 1), for the hold of ``make_hold``.
EARLIER_RECORD = (
    '{"v":1,"cart":"cart-1","shop":"shop-1","ticket":"tic-1","created":1700000400.0,'
    '"meta":{"order":"A7"},"state":"at_risk","renewals":2,"attempt":0,"risk":false,'
    '"warned":false,"res":{"guid":"res-1","shop":"shop-1","ticket":"tic-1","date":"date-1",'
    '"products":[["p-1","Adult",{"price":12.5}]],"reserved":"2026-03-01T12:00:00+00:00",'
    '"expires":"2026-03-01T12:08:00+00:00","deadline":1700001000.0,"raw":{"extra":"é"}}}'
)


def make_hold() -> Hold:
    reservation = Reservation(
        guid="res-1", shop_guid="shop-1", ticket_guid="tic-1", event_date_guid="date-1",
        products=(Product(guid="p-1", name="Adult", raw=MappingProxyType({"price": 12.5})),),
        reserved_at=MOMENT, expires_at=MOMENT.replace(minute=8), deadline=1000.0,
        raw=MappingProxyType({"extra": "é"}),
    )
    hold = Hold(
        id="h-1", cart_id="cart-1", shop_guid="shop-1", ticket_guid="tic-1",
        reservation=reservation, created_at=400.0, metadata=MappingProxyType({"order": "A7"}),
    )
    hold.state = HoldState.AT_RISK
    hold.renewals = 2
    return hold


def test_a_record_of_the_previous_release_loads() -> None:
    hold = new_hold("h-1", EARLIER_RECORD.encode(), OFFSET)
    expected = make_hold()
    assert (hold.cart_id, hold.shop_guid, hold.ticket_guid, hold.created_at) == (
        "cart-1", "shop-1", "tic-1", 400.0,
    )
    assert (hold.state, hold.renewals, dict(hold.metadata or {})) == (
        HoldState.AT_RISK, 2, {"order": "A7"},
    )
    assert hold.reservation == expected.reservation


def test_a_hold_is_written_as_the_previous_release_wrote_it() -> None:
    assert encode_hold(make_hold(), OFFSET) == EARLIER_RECORD.encode()


def plain_hold() -> Hold:
    """A hold with only the SDK's own values: no metadata, no unknown keys."""
    hold = make_hold()
    assert hold.reservation is not None
    hold.metadata = None
    hold.reservation = attrs.evolve(
        hold.reservation, raw=EMPTY_RAW,
        products=(Product(guid="p-1", name="Adult"), Product(guid="p-2", name=None)),
    )
    return hold


def test_a_hold_of_the_sdk_s_own_values_reads_back_the_same() -> None:
    hold = plain_hold()
    again = new_hold("h-1", encode_hold(hold, OFFSET), OFFSET)
    assert again.reservation == hold.reservation
    assert (again.state, again.renewals, again.metadata, again.created_at) == (
        HoldState.AT_RISK, 2, None, 400.0,
    )


def test_a_hold_of_the_sdk_s_own_values_is_written_with_json_s_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    written = json.loads(encode_hold(plain_hold(), OFFSET))
    monkeypatch.setattr(_codec, "dump_own", dump)  # json's writing throughout
    assert written == json.loads(encode_hold(plain_hold(), OFFSET))


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_a_non_finite_unknown_value_of_the_server_s_is_refused_not_written_as_null(
    value: float,
) -> None:
    hold = plain_hold()
    assert hold.reservation is not None
    hold.reservation = attrs.evolve(hold.reservation, raw=MappingProxyType({"score": value}))
    with pytest.raises(InvalidArgument, match="hold h-1"):
        encode_hold(hold, OFFSET)


def test_a_hold_with_plain_unknown_keys_is_written_by_orjson_with_json_s_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hold = plain_hold()
    assert hold.reservation is not None
    raw = MappingProxyType({"status": "reserved", "lines": [1, 2.5, {"tax": None}]})
    hold.reservation = attrs.evolve(hold.reservation, raw=raw)
    by_orjson: list[Any] = []

    def recorded(value: Any) -> bytes:
        by_orjson.append(value)
        return dump_own(value)

    monkeypatch.setattr(_codec, "dump_own", recorded)
    written = encode_hold(hold, OFFSET)
    assert len(by_orjson) == 1  # the fast writer took it, not json's
    monkeypatch.setattr(_codec, "dump_own", dump)  # json's writing throughout
    assert json.loads(written) == json.loads(encode_hold(hold, OFFSET))
    assert new_hold("h-1", written, OFFSET).reservation == hold.reservation


def test_an_unknown_value_json_cannot_write_is_refused_not_written_as_text() -> None:
    hold = plain_hold()
    assert hold.reservation is not None
    moment = MappingProxyType({"when": MOMENT})  # a Reservation built by hand
    hold.reservation = attrs.evolve(hold.reservation, raw=moment)
    with pytest.raises(InvalidArgument, match="hold h-1"):
        encode_hold(hold, OFFSET)

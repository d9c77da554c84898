"""How a shared store writes holds, events and tokens as JSON (pure: no I/O, no clock reads).

A hold record must mean the same thing in every process, so every time in it is
wall-clock epoch seconds: ``Reservation.deadline`` and ``Hold.created_at`` are
readings of the writing process's monotonic clock and are shifted by that
process's ``offset`` (``clock.wall().timestamp() - clock.now()``) on the way
out, and by the reading process's offset on the way back in.

The manager's private bookkeeping on a hold (``_attempt``, ``_risk``,
``_warned``) travels with the record, so the worker that takes a hold over
continues its retry rules where the last one stopped. ``_fence`` does not: the
store keeps it beside the record and counts it up at every claim.

Records are UTF-8 JSON with json's values (``._json``): a hold record without
the application's metadata (and whose unknown keys of the server's are plain
JSON, as the decoder leaves them) and every event record are written by orjson
with the ``fast`` extra, the rest by json; every record is read by orjson where
it gives json's value. A worker with the extra and one without read each
other's records alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from ..._events import HoldEvent
from ..._exceptions import InvalidArgument
from ..._hold import Hold, HoldState, Persisted, persisted, restore
from ..._json import dump_own, dump_text, json_plain, load
from ..._models import EMPTY_RAW, Product, Reservation, TokenSet
from ..._records import RECORD_KEYS, event_record

__all__ = [
    "CartEvent",
    "apply_record",
    "decode_event",
    "decode_token",
    "encode_event",
    "encode_hold",
    "encode_token",
    "new_hold",
    "record_renewals",
]

#: Bumped when the record layout changes incompatibly.
FORMAT = 1


def _raw(value: Any) -> Mapping[str, Any]:
    if not value:
        return EMPTY_RAW
    return MappingProxyType(dict(value))


def _encode_reservation(reservation: Reservation, offset: float) -> dict[str, Any]:
    return {
        "guid": reservation.guid,
        "shop": reservation.shop_guid,
        "ticket": reservation.ticket_guid,
        "date": reservation.event_date_guid,
        "products": [
            [product.guid, product.name, dict(product.raw)] for product in reservation.products
        ],
        "reserved": reservation.reserved_at.isoformat(),
        "expires": reservation.expires_at.isoformat(),
        "deadline": reservation.deadline + offset,
        "raw": dict(reservation.raw),
    }


def _decode_reservation(data: Mapping[str, Any], offset: float) -> Reservation:
    return Reservation(
        guid=data["guid"],
        shop_guid=data["shop"],
        ticket_guid=data["ticket"],
        event_date_guid=data["date"],
        products=tuple(
            Product(guid=guid, name=name, raw=_raw(raw)) for guid, name, raw in data["products"]
        ),
        reserved_at=datetime.fromisoformat(data["reserved"]),
        expires_at=datetime.fromisoformat(data["expires"]),
        deadline=float(data["deadline"]) - offset,
        raw=_raw(data["raw"]),
    )


def encode_hold(hold: Hold, offset: float) -> bytes:
    """The JSON record of ``hold``; ``offset`` turns its clock readings into epoch seconds.

    Raises InvalidArgument if the hold's metadata cannot be written as JSON
    (a shared store needs metadata of JSON types with string keys), and
    UnicodeEncodeError for a string with a lone surrogate.
    """
    reservation = hold.reservation
    part = persisted(hold)
    record = {
        "v": FORMAT,
        "cart": hold.cart_id,
        "shop": hold.shop_guid,
        "ticket": hold.ticket_guid,
        "created": hold.created_at + offset,
        "meta": None if hold.metadata is None else dict(hold.metadata),
        "state": part.state.value,
        "renewals": part.renewals,
        "attempt": part.attempt,
        "risk": part.risk,
        "warned": part.warned,
        "res": None if reservation is None else _encode_reservation(reservation, offset),
    }
    if hold.metadata is None and (reservation is None or _own(reservation)):
        return dump_own(record)
    try:
        text = dump_text(record)
    except (TypeError, ValueError) as error:
        raise InvalidArgument(
            f"hold {hold.id}: a shared store keeps metadata as JSON, and this does not fit: {error}"
        ) from None
    return text.encode()  # a lone surrogate fails here, not taken for bad metadata


def _own(reservation: Reservation) -> bool:
    """Whether ``reservation``'s unknown keys are plain JSON (``json_plain``).

    As the decoder keeps them they are; a Reservation built by hand may hold anything.
    """
    for raw in (reservation.raw, *(product.raw for product in reservation.products)):
        if raw and not json_plain(dict(raw)):
            return False
    return True


def _read(text: str | bytes) -> Any:
    return load(text if isinstance(text, bytes) else text.encode())


def _load(text: str | bytes) -> dict[str, Any]:
    record: dict[str, Any] = _read(text)
    if record.get("v") != FORMAT:
        raise ValueError(f"unknown hold record format {record.get('v')!r}")
    return record


def new_hold(hold_id: str, text: str | bytes, offset: float) -> Hold:
    """A fresh :class:`Hold` from its JSON record (``offset``: this process's clock shift).

    Raises ValueError (or KeyError) for a record this version cannot read.
    """
    record = _load(text)
    metadata = record["meta"]
    hold = Hold(
        id=hold_id,
        cart_id=record["cart"],
        shop_guid=record["shop"],
        ticket_guid=record["ticket"],
        reservation=None,
        created_at=float(record["created"]) - offset,
        metadata=None if metadata is None else MappingProxyType(metadata),
    )
    _apply(hold, record, offset)
    return hold


def record_renewals(text: str | bytes) -> int:
    """How many renewals the JSON record of a hold counts.

    Raises ValueError (or KeyError) for a record this version cannot read.
    """
    return int(_load(text)["renewals"])


def apply_record(hold: Hold, text: str | bytes, offset: float) -> None:
    """Bring ``hold`` up to date with its JSON record, keeping the object's identity.

    Raises ValueError (or KeyError) for a record this version cannot read.
    """
    _apply(hold, _load(text), offset)


def _apply(hold: Hold, record: Mapping[str, Any], offset: float) -> None:
    reservation = record["res"]
    part = Persisted(
        HoldState(record["state"]),
        int(record["renewals"]),
        int(record["attempt"]),
        bool(record["risk"]),
        bool(record["warned"]),
    )
    restore(
        hold, None if reservation is None else _decode_reservation(reservation, offset), part
    )


# -- events ------------------------------------------------------------------------


@attrs.frozen
class CartEvent:
    """A hold event of a watched cart, as another process emitted it.

    ``kind`` is the event class name (``"Renewed"``, ``"Lost"``, ...); ``state``
    the hold's state right after it; ``reservation_guid`` its current
    reservation. ``detail`` carries what the kind adds to the event's record
    (:func:`~openticket_async._records.event_record`): ``old_reservation`` and
    ``new_reservation`` (Renewed), ``reason`` (AtRisk, Lost, Expired), ``order``
    (CheckedOut), ``error``, ``status``, ``message`` and ``will_retry``
    (RenewalFailed). ``origin`` names the emitting store; ``id`` is the stream
    entry id, to resume watching after it.
    """

    id: str
    kind: str
    hold_id: str
    cart_id: str
    ticket_guid: str
    state: HoldState
    time_left: float
    lateness: float
    reservation_guid: str | None
    at: datetime
    origin: str
    detail: Mapping[str, Any] = attrs.field(factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        """True for the one event that ends a hold (Lost, Expired, Released, CheckedOut)."""
        return self.state in (
            HoldState.LOST,
            HoldState.EXPIRED,
            HoldState.RELEASED,
            HoldState.ORDERED,
        )


#: What the stream entry adds to the event's record.
_ENTRY_KEYS = RECORD_KEYS | {"at", "origin"}


def encode_event(event: HoldEvent, at: datetime, origin: str) -> bytes:
    """The JSON of a hold event for the cart's stream: its record, stamped.

    Every value of an event record is the SDK's own (``event_record``).
    """
    return dump_own({**event_record(event), "at": at.isoformat(), "origin": origin})


def decode_event(entry_id: str, text: str | bytes) -> CartEvent:
    """A :class:`CartEvent` from a stream entry; ValueError/KeyError if unreadable."""
    data = _read(text)
    return CartEvent(
        id=entry_id,
        kind=data["type"],
        hold_id=data["hold"],
        cart_id=data["cart"],
        ticket_guid=data["ticket_guid"],
        state=HoldState[data["state"]],
        time_left=float(data["time_left"]),
        lateness=float(data["lateness"]),
        reservation_guid=data["reservation"],
        at=datetime.fromisoformat(data["at"]),
        origin=data["origin"],
        detail=MappingProxyType(
            {key: value for key, value in data.items() if key not in _ENTRY_KEYS}
        ),
    )


# -- tokens ------------------------------------------------------------------------


def encode_token(token: TokenSet) -> str:
    """The JSON of a token set (secrets included: it is what the store shares)."""
    return dump_text(
        {
            "access_token": token.access_token,
            "refresh_token": token.refresh_token,
            "expires_at": token.expires_at.isoformat(),
            "refresh_expires_at": None
            if token.refresh_expires_at is None
            else token.refresh_expires_at.isoformat(),
            "companies": list(token.companies),
            "raw": dict(token.raw),
        }
    )


def decode_token(text: str | bytes) -> TokenSet:
    """A :class:`TokenSet` from its JSON; ValueError/KeyError if unreadable."""
    data = _read(text)
    refresh_expires = data["refresh_expires_at"]
    return TokenSet(
        access_token=data["access_token"],
        refresh_token=data["refresh_token"],
        expires_at=datetime.fromisoformat(data["expires_at"]),
        refresh_expires_at=None if refresh_expires is None else datetime.fromisoformat(
            refresh_expires
        ),
        companies=tuple(data["companies"]),
        raw=_raw(data["raw"]),
    )

"""The reserve answer -> :class:`~openticket_async.Reservation`: the client's hot path.

Theory of operation
-------------------
A manager renews every hold a little before OpenTicket's 8-minute drop, so the
client decodes answers of one shape over and over: a server writes its answers
with the same keys in the same order, whichever ticket they are for. The decoder
follows the converter's rules (``_wire``: any casing, numbers as strings, unknown
keys kept in ``raw``, the first spelling of a field wins) with one path for every
answer:

1. **Layout** (``_reserve_fields.layout_of``): the answer's keys, in order, look
   up their layout, which says which key spells each field and which keys are
   unknown. Only a layout never seen is read key by key (``read_layout``). The
   fields are then read with one ``dict.get`` each, whatever their casing, and
   the unknown keys with one lookup each. Products are read the same way, with
   the layouts of product objects.
2. **Values**: each value is checked and decoded (``_reserve_fields``), and
   values equal to ones decoded before are shared instead of kept twice: the
   request's shop and ticket GUIDs, event date GUIDs and tuples of products
   without unknown keys (``shared``), a lone ``{"guid", "name"}`` product
   (``one_product``), the last unknown keys (``last_raw``) and the last pair of
   timestamps (``last_moments``: reservations made in one instant carry the same
   texts).
3. **Build**: the reservation is built by writing its slots (``slot_setters``),
   and its expiry is capped at ``sent_wall + ttl`` (``deadline`` at
   ``sent_at + ttl``).

Nothing is remembered per ticket but its lone product's tuple (``one_product``,
bounded, see Limits), so the cost of an answer does not depend on how many
tickets a client renews in rotation, up to that bound. Everything remembered between
answers lives in one :class:`DecoderMemory`, ``MEMORY``, one per process: the
values it shares are the same whichever client decoded them, and the memory is
then bounded once, not once per client.

Limits
------
Each table counts entries, and holds at most its limit:

- ``VALUES_LIMIT`` (16,384) bounds ``shared`` (event date GUIDs and product
  tuples, keyed by value) and ``one_product`` (the tuple of a lone ``{"guid",
  "name"}`` product, keyed by its GUID). A ticket has its own products, so
  ``one_product`` holds one entry per ticket in use: the limit is
  ``TICKETS_IN_ROTATION``, as for the client's other per-ticket tables, so that
  a client renewing that many tickets in rotation still finds every product,
  builds nothing and leaves nothing new for the garbage collector. About 0.2 kB
  per entry (3 MB full).
- ``LAYOUTS_LIMIT`` (4096) bounds ``layouts`` and ``product_layouts``, keyed by
  an object's keys in order. A server uses one or two layouts per object; the
  limit only stops a hostile one.
- ``last_raw`` and ``last_moments`` are one slot each.

A table that reaches its limit is emptied and fills again: no eviction order to
keep, O(1) amortized. What is lost is only sharing and known layouts: the next
answers read their layout again and decode to the same values. The limits count
entries, not bytes: ``shared`` keeps the values it shares, so the memory it
holds also grows with the size of those values.

Invariants
----------
1. No table of ``MEMORY`` holds more entries than its limit after a call
   (``MEMORY.sizes()[name] <= DecoderMemory.LIMITS[name]``), when one thread
   decodes at a time (see 6).
2. The memory changes no value: an answer decodes to a reservation equal in every
   value and type (``raw`` and products' ``raw`` included) to what it decodes to
   in a fresh process, or raises the same DecodeError.
3. A layout depends on the keys alone, never on the values, so any answer with
   those keys may be read through it.
4. Everything shared is immutable: strings, tuples of frozen products without
   unknown keys, aware UTC datetimes, and read-only ``raw`` views of dicts that
   nothing else writes to. Unknown values are shared only when equal means the
   same (``plain``: 1 == 1.0 == true, so numbers never are); ``last_raw`` keeps
   only plain unknown keys, and JSON equal to a plain value is plain itself.
5. ``expires_at <= sent_wall + ttl`` and ``deadline <= sent_at + ttl``.
6. Every memory access is one dict or attribute operation, or a length check
   before one, so clients in several threads can share ``MEMORY``: a race can
   lose a sharing or put one entry per thread past a limit, never change a value.

Cost
----
An answer costs a layout lookup (a tuple of its keys, hashed), one ``dict.get``
per field and one lookup per unknown key, a lookup of its event date, its
products (a lookup for a lone plain product; else a layout lookup, two gets and
a read-only ``raw`` per product), one comparison of its timestamp texts with the
last ones (or two ``fromisoformat``) and nine slot writes: O(size of the answer),
with no key normalised once its layout is known. The memory is at most the
limits' worth of entries (see Limits).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from ._exceptions import DecodeError
from ._models import EMPTY_RAW, Product, Reservation
from ._protocol import TICKETS_IN_ROTATION
from ._reserve_fields import (
    RESERVATION_NAMES,
    Layout,
    guid_value,
    layout_of,
    moment,
    named_product,
    plain,
    product,
    products,
    slot_setters,
)
from ._wire import field_error, json_kind, structure_str

__all__ = [
    "LAYOUTS_LIMIT",
    "MEMORY",
    "VALUES_LIMIT",
    "DecoderMemory",
    "decode_reservation",
]

#: Entries in ``shared`` and in ``one_product`` (see Limits above).
VALUES_LIMIT = TICKETS_IN_ROTATION
#: Entries in ``layouts`` and in ``product_layouts``, one per key layout (see Limits).
LAYOUTS_LIMIT = 4096

_T = TypeVar("_T")
# the texts of the last timestamps before there are any: they equal nothing
_NO_MOMENTS: tuple[object, datetime, object, datetime] = (
    object(),
    datetime.min,
    object(),
    datetime.min,
)


# the last unknown keys before there are any, or when they were not plain: they
# equal nothing
_NO_RAW: tuple[object, Mapping[str, Any]] = (object(), EMPTY_RAW)


class DecoderMemory:
    """What the reservation decoder remembers between answers, every table bounded.

    See the module docstring for what each table holds, its limit and what
    happens there. The decoder uses the one instance ``MEMORY``.
    """

    __slots__ = (
        "last_moments",
        "last_raw",
        "layouts",
        "one_product",
        "product_layouts",
        "shared",
    )

    #: Each table's name -> the most entries it ever holds.
    LIMITS: ClassVar[Mapping[str, int]] = MappingProxyType(
        {
            "shared": VALUES_LIMIT,
            "one_product": VALUES_LIMIT,
            "layouts": LAYOUTS_LIMIT,
            "product_layouts": LAYOUTS_LIMIT,
        }
    )

    def __init__(self) -> None:
        """Start with every table empty."""
        self.shared: dict[Any, Any] = {}
        self.one_product: dict[str, tuple[Product, ...]] = {}
        self.layouts: dict[tuple[Any, ...], Layout] = {}
        self.product_layouts: dict[tuple[Any, ...], Layout] = {}
        # raw may hold unhashable values: one slot, compared, instead of a table; it
        # holds only unknown keys whose values are plain (see _raw)
        self.last_raw: tuple[object, Mapping[str, Any]] = _NO_RAW
        # the texts and datetimes of the last reserved_at and expires_at
        self.last_moments: tuple[object, datetime, object, datetime] = _NO_MOMENTS

    def sizes(self) -> dict[str, int]:
        """Each table's name -> the entries it holds now (for tests and metrics)."""
        return {name: len(getattr(self, name)) for name in self.LIMITS}

    def __repr__(self) -> str:
        sizes = " ".join(f"{name}={size}" for name, size in self.sizes().items())
        return f"<DecoderMemory {sizes}>"


#: The decoder's memory, shared by every client of the process.
MEMORY = DecoderMemory()


def _remember(table: dict[Any, Any], limit: int, key: Any, value: Any) -> None:
    # emptied when full (see Limits): simpler and cheaper than any eviction order
    if len(table) >= limit:
        table.clear()
    table[key] = value


def _share(value: _T) -> _T:
    shared: _T | None = MEMORY.shared.get(value)
    if shared is None:
        _remember(MEMORY.shared, VALUES_LIMIT, value, value)
        return value
    return shared


_new = object.__new__
(
    _R_GUID,
    _R_SHOP,
    _R_TICKET,
    _R_EVENT_DATE,
    _R_PRODUCTS,
    _R_RESERVED_AT,
    _R_EXPIRES_AT,
    _R_DEADLINE,
    _R_RAW,
) = slot_setters(Reservation, (*RESERVATION_NAMES, "deadline", "raw"))
_from_iso = datetime.fromisoformat


def decode_reservation(
    data: Any,
    *,
    shop_guid: str,
    ticket_guid: str,
    sent_at: float,
    sent_wall: datetime,
    ttl: timedelta,
) -> Reservation:
    """Decode a reserve answer into a :class:`Reservation`.

    ``sent_at``/``sent_wall`` are the client's monotonic and wall times read just
    before the request was sent. The reservation expires at the server's
    ``expires_at`` if it sends one, but never later than ``sent_wall + ttl``: we
    cannot know how long the request took to arrive, so the send time is the
    conservative start. ``deadline`` is that same moment on the monotonic clock.
    Missing ``shop_guid``/``ticket_guid`` are taken from the request.

    Raises DecodeError naming the field if the payload is not a usable reservation.
    """
    if type(data) is not dict:
        raise DecodeError(f"expected an object for Reservation, got {json_kind(data)}")
    memory = MEMORY
    layouts = memory.layouts
    # the layout's lookup is layout_of's first line, done here: one call less
    fields, unknown = layouts.get(tuple(data)) or layout_of(
        data, RESERVATION_NAMES, layouts, LAYOUTS_LIMIT
    )
    guid, shop, ticket, event_date, items, reserved, expires = map(data.get, fields)
    if type(guid) is not str:
        guid = guid_value(guid)
    field = "shop_guid"
    try:
        # A manager keeps one reservation per hold, and most of a reservation repeats
        # across the holds of one ticket: equal values are shared, not kept twice
        if shop is None or shop == shop_guid:
            shop = shop_guid
        elif type(shop) is not str:
            shop = structure_str(shop)
        field = "ticket_guid"
        if ticket is None or ticket == ticket_guid:
            ticket = ticket_guid
        elif type(ticket) is not str:
            ticket = structure_str(ticket)
        field = "event_date_guid"
        if event_date is not None:
            if type(event_date) is not str:
                event_date = structure_str(event_date)
            event_date = _share(event_date)
        field = "products"
        if items is None:
            decoded_products: tuple[Product, ...] = ()
        elif type(items) is list and len(items) == 1:
            field = "products[0]"
            decoded_products = _one_product(items[0])
        else:
            decoded_products = products(items, memory.product_layouts, LAYOUTS_LIMIT)
            for item in decoded_products:  # a loop: all() of a generator costs a frame
                if item.raw is not EMPTY_RAW:
                    break
            else:
                decoded_products = _share(decoded_products)
    except DecodeError as error:
        raise field_error(error, field) from None
    raw = _raw(data, unknown) if unknown else EMPTY_RAW
    latest = sent_wall + ttl
    if reserved is None and expires is None:  # the "no expiry" answer
        reserved_at, expires_at = sent_wall, latest
    else:
        last = memory.last_moments  # one read: clients in other threads
        if reserved == last[0] and expires == last[2]:
            reserved_at, expires_at = last[1], last[3]
        else:
            reserved_at, expires_at = _timestamps(reserved, expires, sent_wall, latest)
    if expires_at >= latest:
        expires_at = latest
        deadline = sent_at + ttl.total_seconds()
    else:
        deadline = sent_at + (expires_at - sent_wall).total_seconds()
    reservation = _new(Reservation)
    _R_GUID(reservation, guid)
    _R_SHOP(reservation, shop)
    _R_TICKET(reservation, ticket)
    _R_EVENT_DATE(reservation, event_date)
    _R_PRODUCTS(reservation, decoded_products)
    _R_RESERVED_AT(reservation, reserved_at)
    _R_EXPIRES_AT(reservation, expires_at)
    _R_DEADLINE(reservation, deadline)
    _R_RAW(reservation, raw)
    return reservation


def _raw(data: dict[Any, Any], unknown: tuple[object, ...]) -> Mapping[str, Any]:
    """The unknown keys of ``data``, read-only; the last ones' view if they are equal.

    The unknown keys of a burst of reserves are alike, so equal ones share a view,
    if equal means the same (see ``plain``: 1 == 1.0 == true).
    """
    raw: dict[Any, Any] = {}
    for key in unknown:  # a loop: a comprehension is a function call of its own
        raw[key] = data[key]
    last_raw, frozen = MEMORY.last_raw  # one read: clients in other threads
    if raw != last_raw:
        frozen = MappingProxyType(raw)
        # only a plain view is offered for sharing: JSON equal to a plain value is
        # plain itself, so an answer equal to it needs no look of its own
        MEMORY.last_raw = (raw, frozen) if plain(raw) else _NO_RAW
    return frozen


def _timestamps(
    reserved: Any, expires: Any, sent_wall: datetime, latest: datetime
) -> tuple[datetime, datetime]:
    """reserved_at and expires_at from their JSON values (sent_wall and latest if absent).

    The usual pair, two ISO 8601 texts in UTC, is remembered as the last
    timestamps (``last_moments``): the reservations made in the same instant
    carry the same texts, and then share their datetimes.
    """
    try:
        reserved_at = _from_iso(reserved)
        expires_at = _from_iso(expires)
    except (TypeError, ValueError):
        pass
    else:
        if reserved_at.tzinfo is UTC and expires_at.tzinfo is UTC:
            MEMORY.last_moments = (reserved, reserved_at, expires, expires_at)
            return reserved_at, expires_at
    # anything else: one absent, epoch seconds, an offset, no offset, or no date-time
    reserved_at = sent_wall if reserved is None else moment(reserved, "reserved_at")
    expires_at = latest if expires is None else moment(expires, "expires_at")
    return reserved_at, expires_at


def _one_product(value: Any) -> tuple[Product, ...]:
    # The usual answer has one product of exactly {"guid", "name"}: its tuple is
    # shared by every reservation of the ticket, and found without building it.
    # Keyed by the GUID alone (a string, which the garbage collector never walks),
    # the name compared on a hit
    if type(value) is dict and len(value) == 2:
        guid, name = value.get("guid"), value.get("name")
        if type(guid) is str and type(name) is str:
            found = MEMORY.one_product.get(guid)
            if found is None or found[0].name != name:
                found = (named_product(guid, name),)
                _remember(MEMORY.one_product, VALUES_LIMIT, guid, found)
            return found
    return (product(value, MEMORY.product_layouts, LAYOUTS_LIMIT),)

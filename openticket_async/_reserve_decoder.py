"""The reserve answer -> :class:`~openticket_async.Reservation`: the client's hot path.

Theory of operation
-------------------
A manager renews every hold a little before OpenTicket's 8-minute drop, so the
client decodes the same tickets' answers over and over, and the answers for one
ticket differ only in ``guid``, ``reserved_at`` and ``expires_at``. The decoder
follows the converter's rules (``_wire``: any casing, numbers as strings, unknown
keys kept in ``raw``) but takes one of two paths:

- **Key by key** (:func:`_reservation_parts`): the documented snake_case keys are
  read with ``dict.get``; only a key outside them costs a look (it goes to
  ``raw``, or, if it spells a field in another casing, the whole answer is sorted
  key by key). Each value is checked and decoded (``_reserve_fields``), and equal
  values are shared with the reservations decoded before (event date GUIDs,
  product tuples, timestamps, unknown keys). From a ticket's second answer on,
  the answer is offered as the ticket's *template*.
- **Template** (``Template``): an answer with as many keys as its ticket's
  template, for the same shop, is read through the template's layout (two
  ``itemgetter`` calls). When its stable values (shop, ticket, event date,
  products, unknown keys) equal the template's, the template's decoded parts are
  reused as they are; when only the unknown values changed, only ``raw`` is
  rebuilt. Only ``guid`` and the timestamps are then read, and timestamps equal
  to the ticket's last ones reuse their datetimes.

Either way the reservation is built by writing its slots (``slot_setters``),
and its expiry is capped at ``sent_wall + ttl`` (``deadline`` at ``sent_at + ttl``).

Everything remembered between answers lives in one :class:`DecoderMemory`,
``MEMORY``, one per process: the values it shares are the same whichever client
decoded them, and the memory is then bounded once, not once per client.

Limits
------
Each table counts entries, and holds at most its limit:

- ``VALUES_LIMIT`` (4096) bounds ``shared`` (event date GUIDs and product tuples,
  keyed by value) and ``one_product`` (the tuple of a lone ``{"guid", "name"}``
  product, keyed by the pair). A shop has a few event dates and products; 4096
  leaves room for a process serving many shops.
- ``TICKETS_LIMIT`` (4096) bounds ``templates`` and ``moments`` (the last
  timestamps, as texts and as datetimes), keyed by the ticket GUID of the
  request. It is sized for a manager holding a few thousand tickets at once.
- ``LAYOUTS_LIMIT`` (4096) bounds ``layouts``, keyed by an answer's keys in order.
  A server uses one or two layouts; the limit only stops a hostile one.
- ``SPELLINGS_LIMIT`` (4096, from ``_reserve_fields``) bounds each of
  ``reservation_spellings`` and ``product_spellings``: every key seen, as sent,
  with the field it spells (or none). A server spells a handful of keys.
- ``last_raw`` is one slot (the last unknown keys and their read-only view).

A spellings table that reaches its limit stops learning: a key it does not know
is then normalised each time it comes (``snake_key``), which decodes the same, a
little slower. Any other table that reaches its limit is emptied and fills
again: no eviction order to keep, O(1) amortized. What is lost is only sharing
and templates: the next answers take the key-by-key path and decode to the same
values. Past ``TICKETS_LIMIT`` tickets renewed in rotation, a ticket's template
is mostly gone before its next answer comes, so most answers take the key-by-key
path: correct, and slower per answer. The limits count entries, not bytes: a
template keeps the stable values of its answer, so the memory a table holds
also grows with the size of those values.

Invariants
----------
1. No table of ``MEMORY`` holds more entries than its limit after a call
   (``MEMORY.sizes()[name] <= DecoderMemory.LIMITS[name]``), when one thread
   decodes at a time (see 6).
2. The memory changes no value: an answer decodes to a reservation equal in every
   value and type (``raw`` and products' ``raw`` included) to what it decodes to
   for a ticket never seen before, or raises the same DecodeError.
3. A template stands only for plain JSON (strings, nulls, arrays and objects of
   them, see ``plain``) with no unknown product keys: an equal answer then
   decodes to exactly its parts, so reusing them skips no check that could fail.
4. Everything shared is immutable: strings, tuples of frozen products without
   unknown keys, aware UTC datetimes, and read-only ``raw`` views of dicts that
   nothing else writes to.
5. ``expires_at <= sent_wall + ttl`` and ``deadline <= sent_at + ttl``.
6. Every memory access is one dict or attribute operation, or a length check
   before one, so clients in several threads can share ``MEMORY``: a race can
   lose a sharing or put one entry per thread past a limit, never change a value.

Cost
----
On the template path an answer costs a template lookup, two ``itemgetter`` calls,
one comparison of its stable values (O(their size); the products compare as their
small dicts), one lookup of the last timestamps and nine slot writes: no key is
normalised, no value decoded, nothing allocated but the reservation and two
tuples. The key-by-key path is O(size of the answer) plus a few bounded table
lookups; it runs for a ticket's first two answers and for any answer no template
fits. The memory is at most the limits' worth of entries (see Limits).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from ._exceptions import DecodeError
from ._models import EMPTY_RAW, Product, Reservation
from ._reserve_fields import (
    RESERVATION_KEYS,
    RESERVATION_NAMES,
    SPELLINGS_LIMIT,
    Layout,
    Parts,
    Spellings,
    Template,
    guid_value,
    learn,
    moment,
    plain,
    product,
    products,
    read_layout,
    slot_setters,
    sort,
)
from ._wire import field_error, json_kind, structure_str

__all__ = [
    "LAYOUTS_LIMIT",
    "MEMORY",
    "SPELLINGS_LIMIT",
    "TICKETS_LIMIT",
    "VALUES_LIMIT",
    "DecoderMemory",
    "decode_reservation",
]

#: Entries in ``shared`` and in ``one_product`` (see Limits above).
VALUES_LIMIT = 4096
#: Entries in ``templates`` and in ``moments``, one per ticket (see Limits above).
TICKETS_LIMIT = 4096
#: Entries in ``layouts``, one per key layout (see Limits above).
LAYOUTS_LIMIT = 4096

_T = TypeVar("_T")


class DecoderMemory:
    """What the reservation decoder remembers between answers, every table bounded.

    See the module docstring for what each table holds, its limit and what
    happens there. The decoder uses the one instance ``MEMORY``.
    """

    __slots__ = (
        "last_raw",
        "layouts",
        "moments",
        "one_product",
        "product_spellings",
        "reservation_spellings",
        "shared",
        "templates",
    )

    #: Each table's name -> the most entries it ever holds.
    LIMITS: ClassVar[Mapping[str, int]] = MappingProxyType(
        {
            "shared": VALUES_LIMIT,
            "one_product": VALUES_LIMIT,
            "templates": TICKETS_LIMIT,
            "moments": TICKETS_LIMIT,
            "layouts": LAYOUTS_LIMIT,
            "reservation_spellings": SPELLINGS_LIMIT,
            "product_spellings": SPELLINGS_LIMIT,
        }
    )

    def __init__(self) -> None:
        """Start with every table empty."""
        self.shared: dict[Any, Any] = {}
        self.one_product: dict[tuple[str, str], tuple[Product, ...]] = {}
        self.templates: dict[str, Template | None] = {}  # None: the ticket came once
        self.moments: dict[str, tuple[str, datetime, str, datetime]] = {}
        self.layouts: dict[tuple[Any, ...], Layout | None] = {}
        self.reservation_spellings: Spellings = {}
        self.product_spellings: Spellings = {}
        # raw may hold unhashable values: one slot, compared, instead of a table
        self.last_raw: tuple[dict[Any, Any], Mapping[str, Any]] = ({}, EMPTY_RAW)

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
# stand for the values of an answer that lacks a template's keys, and for the texts
# of a ticket's last timestamps before it has any: they equal nothing
_NO_VALUES = (object(),) * 4
_NO_MOMENTS: tuple[object, datetime, object, datetime] = (
    object(),
    datetime.min,
    object(),
    datetime.min,
)


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
    parts: Parts | None = None
    template = MEMORY.templates.get(ticket_guid)
    if template is not None and len(data) == template.size and template.shop_guid == shop_guid:
        try:
            stable = template.pick_stable(data)
            guid, reserved, expires = template.pick_varying(data)
        except KeyError:  # as many keys, spelled otherwise
            stable = _NO_VALUES
        if stable == template.stable:
            parts = template.parts
        elif stable[:4] == template.stable[:4]:
            parts, successor = template.with_unknown_values(stable)
            if successor is not None:
                _remember(MEMORY.templates, TICKETS_LIMIT, ticket_guid, successor)
    if parts is None:
        guid, reserved, expires, parts = _reservation_parts(data, shop_guid, ticket_guid)
    shop, ticket, event_date, decoded_products, raw = parts
    if type(guid) is not str:
        guid = guid_value(guid)
    latest = sent_wall + ttl
    last = MEMORY.moments.get(ticket_guid, _NO_MOMENTS)
    if reserved == last[0] and expires == last[2]:
        reserved_at, expires_at = last[1], last[3]
    else:
        reserved_at, expires_at = _timestamps(reserved, expires, sent_wall, latest, ticket_guid)
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


def _timestamps(
    reserved: Any, expires: Any, sent_wall: datetime, latest: datetime, ticket_guid: str
) -> tuple[datetime, datetime]:
    """reserved_at and expires_at from their JSON values (sent_wall and latest if absent).

    The usual pair, two ISO 8601 texts in UTC, is remembered as the ticket's last
    timestamps (``moments``): the reservations made in the same instant carry the
    same texts, and then share their datetimes.
    """
    try:
        reserved_at = _from_iso(reserved)
        expires_at = _from_iso(expires)
    except (TypeError, ValueError):
        pass
    else:
        if reserved_at.tzinfo is UTC and expires_at.tzinfo is UTC:
            moments = MEMORY.moments  # _remember, inlined: every first answer comes here
            if len(moments) >= TICKETS_LIMIT:
                moments.clear()
            moments[ticket_guid] = (reserved, reserved_at, expires, expires_at)
            return reserved_at, expires_at
    # anything else: absent, epoch seconds, an offset, no offset, or no date-time
    reserved_at = sent_wall if reserved is None else moment(reserved, "reserved_at")
    expires_at = latest if expires is None else moment(expires, "expires_at")
    return reserved_at, expires_at


def _one_product(value: Any) -> tuple[Product, ...]:
    # The usual answer has one product of exactly {"guid", "name"}: its tuple is
    # shared by every reservation of the ticket, and found without building it
    if type(value) is dict and len(value) == 2:
        guid, name = value.get("guid"), value.get("name")
        if type(guid) is str and type(name) is str:
            key = (guid, name)
            found = MEMORY.one_product.get(key)
            if found is None:
                found = (product(value, MEMORY.product_spellings),)
                _remember(MEMORY.one_product, VALUES_LIMIT, key, found)
            return found
    return (product(value, MEMORY.product_spellings),)


def _reservation_parts(
    data: dict[Any, Any], shop_guid: str, ticket_guid: str
) -> tuple[str, Any, Any, Parts]:
    """Decode an answer no template matched, key by key.

    Returns the checked guid, the reserved_at and expires_at values as sent,
    and the other fields decoded; offers the answer as the ticket's template.
    """
    # The documented snake_case keys are read directly; only a key outside them
    # costs a look (it goes to raw, or, if it spells a field in another casing,
    # sends the whole payload through the key-by-key sort).
    memory = MEMORY
    get = data.get
    guid = get("guid")
    shop = get("shop_guid")
    ticket = get("ticket_guid")
    event_date = get("event_date_guid")
    items = get("products")
    reserved = get("reserved_at")
    expires = get("expires_at")
    raw: dict[Any, Any] | None = None
    if len(data) != 7 or None in (guid, shop, ticket, event_date, items, reserved, expires):
        spellings = memory.reservation_spellings
        for key in data:
            if key in RESERVATION_KEYS:
                continue
            index = spellings.get(key)
            if index is None:
                index = learn(key, spellings, RESERVATION_NAMES)
            if index >= 0:
                slots, raw = sort(data, spellings, RESERVATION_NAMES)
                guid, shop, ticket, event_date, items, reserved, expires = slots
                break
            if raw is None:
                raw = {}
            raw[key] = data[key]
    guid = guid_value(guid)
    field = "shop_guid"
    try:
        if shop is None:
            shop = shop_guid
        elif type(shop) is not str:
            shop = structure_str(shop)
        field = "ticket_guid"
        if ticket is None:
            ticket = ticket_guid
        elif type(ticket) is not str:
            ticket = structure_str(ticket)
        field = "event_date_guid"
        if event_date is not None and type(event_date) is not str:
            event_date = structure_str(event_date)
        field = "products"
        if items is None:
            decoded_products: tuple[Product, ...] = ()
        elif type(items) is list and len(items) == 1:
            field = "products[0]"
            decoded_products = _one_product(items[0])
        else:
            decoded_products = products(items, memory.product_spellings)
            if all(item.raw is EMPTY_RAW for item in decoded_products):
                decoded_products = _share(decoded_products)
    except DecodeError as error:
        raise field_error(error, field) from None
    # A manager keeps one reservation per hold, and most of a reservation repeats
    # across the holds of one ticket: share equal values instead of keeping copies
    # (products are shared above, as they are decoded)
    if shop == shop_guid:
        shop = shop_guid
    if ticket == ticket_guid:
        ticket = ticket_guid
    if event_date is not None:
        shared = memory.shared.get(event_date)
        if shared is None:
            _remember(memory.shared, VALUES_LIMIT, event_date, event_date)
        else:
            event_date = shared
    if not raw:
        frozen_raw = EMPTY_RAW
    else:
        # the unknown keys of a burst of reserves are alike: equal ones share a view,
        # if equal means the same (see plain: 1 == 1.0 == true)
        last_raw, frozen_raw = memory.last_raw  # one read: clients in other threads
        if raw != last_raw or not plain(raw):
            frozen_raw = MappingProxyType(raw)
            memory.last_raw = (raw, frozen_raw)
    parts: Parts = (shop, ticket, event_date, decoded_products, frozen_raw)
    # the second answer for a ticket (or one its template did not fit) may become
    # its template: a ticket reserved once never pays for one
    if ticket_guid in memory.templates:
        template = Template.of(data, shop_guid, parts, _layout(data))
        if template is not None:
            _remember(memory.templates, TICKETS_LIMIT, ticket_guid, template)
    else:
        _remember(memory.templates, TICKETS_LIMIT, ticket_guid, None)
    return guid, reserved, expires, parts


def _layout(data: dict[Any, Any]) -> Layout | None:
    """The layout of ``data``'s keys (see ``read_layout``), remembered by keys."""
    keys = tuple(data)
    try:
        return MEMORY.layouts[keys]
    except KeyError:  # a server uses one or two layouts: this is seldom
        pass
    layout = read_layout(keys, MEMORY.reservation_spellings)
    _remember(MEMORY.layouts, LAYOUTS_LIMIT, keys, layout)
    return layout

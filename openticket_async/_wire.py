"""OpenTicket JSON <-> models: the one cattrs converter, lenient in, exact out.

The real response shapes are unverified (see ``docs/wire.md``), so decoding is
forgiving where the API is known to wobble and strict where a wrong value would
hurt later:

- keys match in snake_case or camelCase (``eventDateGuid``, ``event_date_guid``,
  ``EventDateGUID`` are one key);
- numbers may come as strings (``"21"``), identifiers as numbers;
- datetimes are ISO 8601 (``Z`` or an offset; naive ones are taken as UTC) or
  epoch seconds, and always come out as aware UTC datetimes;
- every key a model has no field for is kept, under its original spelling, in
  the model's read-only ``raw``; keys that became fields are not stored twice;
- a missing required field, or a value of the wrong type, raises
  :class:`~openticket_async.DecodeError` naming the field (``products[1].guid``).

Two payloads are decoded by hand rather than through the converter, with the
same key matching and value rules (the helpers below are shared for that): the
reservation, because reserve is the hot path and a direct loop over the keys is
several times faster than a generic structure hook; and the token response,
whose expiry fields are relative to the time of the answer (``_token_decoder``).
Renewals reserve the same tickets over and over, and their answers differ only
in guid and timestamps: an answer that repeats the rest of its ticket's last one
reuses what that decoded to (see ``_Template``).

Encoding (``unstructure``) is exact: field names in snake_case, ``raw`` keys
merged back at top level, datetimes as ISO 8601 with ``Z``. Structuring that
output again gives an equal model, so stores can persist models with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from types import MappingProxyType
from typing import Any, TypeVar, get_args, get_origin

import attrs
import cattrs

from ._exceptions import DecodeError
from ._models import (
    EMPTY_RAW,
    Order,
    OrderTicket,
    PaymentMethod,
    Product,
    Reservation,
    TokenSet,
    User,
)

__all__ = [
    "CONVERTER",
    "decode_reservation",
    "field_error",
    "json_kind",
    "make_converter",
    "parse_datetime",
    "snake_key",
    "structure_float",
    "structure_str",
]

#: The models the converter structures and unstructures.
MODELS: tuple[type, ...] = (Order, OrderTicket, PaymentMethod, Product, Reservation, TokenSet, User)

_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SNAKE_CACHE: dict[str, str] = {}
# a hostile server could send endless distinct keys; past this the cache stops growing
_SNAKE_CACHE_LIMIT = 4096


def snake_key(key: str) -> str:
    """Normalise a JSON key to snake_case: ``eventDateGUID`` -> ``event_date_guid``."""
    cached = _SNAKE_CACHE.get(key)
    if cached is not None:
        return cached
    name = _CAMEL_BOUNDARY.sub("_", key).replace("-", "_").lower()
    if len(_SNAKE_CACHE) < _SNAKE_CACHE_LIMIT:
        _SNAKE_CACHE[key] = name
    return name


def json_kind(value: object) -> str:
    """The JSON type of ``value`` (``object``, ``array``, ``str``...) for an error message.

    Only the type is named: values may be secrets and never go into messages.
    """
    return {dict: "object", list: "array", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def field_error(error: DecodeError, prefix: str) -> DecodeError:
    """``error`` again, its field put under ``prefix`` (``guid`` -> ``products[1].guid``)."""
    inner = error.field
    if inner is None:
        field = prefix
    elif inner.startswith("["):
        field = prefix + inner
    else:
        field = f"{prefix}.{inner}"
    return DecodeError(str(error.args[0]), field=field)


def structure_str(value: Any, _type: object = str) -> str:
    """A JSON string as is, or a number as its text. Raises DecodeError otherwise."""
    if type(value) is str:
        return value
    if type(value) is int:  # identifiers sometimes come as numbers
        return str(value)
    raise DecodeError(f"expected a string, got {json_kind(value)}")


def structure_float(value: Any, _type: object = float) -> float:
    """A finite number, sent as a number or as its text. Raises DecodeError otherwise."""
    number: float | None = None
    if type(value) is int or type(value) is float:
        number = float(value)
    elif type(value) is str:
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise DecodeError(f"expected a number, got {json_kind(value)}")
    return number


def parse_datetime(value: Any, _type: object = datetime) -> datetime:
    """Decode an ISO 8601 string or epoch seconds to an aware UTC datetime.

    Raises DecodeError if the value is neither.
    """
    if type(value) is str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            try:
                moment = datetime.fromtimestamp(float(value), UTC)
            except (ValueError, OverflowError, OSError):
                raise DecodeError("expected an ISO 8601 date-time") from None
        if moment.tzinfo is UTC:  # "...Z": the common case
            return moment
    elif type(value) is int or type(value) is float:
        try:
            return datetime.fromtimestamp(value, UTC)
        except (ValueError, OverflowError, OSError):
            raise DecodeError("expected a date-time, got an out-of-range number") from None
    elif isinstance(value, datetime):
        moment = value
    else:
        raise DecodeError(f"expected a date-time, got {json_kind(value)}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _format_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _is_model(cls: Any) -> bool:
    return cls in MODELS


def _is_homogeneous_tuple(cls: Any) -> bool:
    args = get_args(cls)
    return get_origin(cls) is tuple and len(args) == 2 and args[1] is Ellipsis


def _tuple_hook(converter: cattrs.Converter, cls: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
    item_type = get_args(cls)[0]
    structure_item = converter.get_structure_hook(item_type)

    def structure(value: Any, _type: Any) -> tuple[Any, ...]:
        if type(value) is not list and type(value) is not tuple:
            raise DecodeError(f"expected an array, got {json_kind(value)}")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(structure_item(item, item_type))
            except DecodeError as error:
                raise field_error(error, f"[{index}]") from None
        return tuple(items)

    return structure


def _model_structure_hook(
    converter: cattrs.Converter, cls: type[Any]
) -> Callable[[Any, Any], Any]:
    attrs.resolve_types(cls)
    fields = [f for f in attrs.fields(cls) if f.name != "raw"]
    names = {f.name for f in fields}
    plan = [
        (f.name, f.default is attrs.NOTHING, converter.get_structure_hook(f.type), f.type)
        for f in fields
    ]
    label = cls.__name__

    def structure(data: Any, _type: Any) -> Any:
        if not isinstance(data, Mapping):
            raise DecodeError(f"expected an object for {label}, got {json_kind(data)}")
        values: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        for key, value in data.items():
            name = snake_key(key) if type(key) is str else ""
            if name in names and name not in values:
                values[name] = value
            else:
                raw[key] = value
        kwargs: dict[str, Any] = {}
        for name, required, hook, field_type in plan:
            value = values.get(name)
            if value is None:
                if required:
                    raise DecodeError(f"{label} is missing a required field", field=name)
                continue
            try:
                kwargs[name] = hook(value, field_type)
            except DecodeError as error:
                raise field_error(error, name) from None
        return cls(**kwargs, raw=MappingProxyType(raw) if raw else EMPTY_RAW)

    return structure


def _model_unstructure_hook(
    converter: cattrs.Converter, cls: type[Any]
) -> Callable[[Any], dict[str, Any]]:
    attrs.resolve_types(cls)
    plan = [(f.name, converter.get_unstructure_hook(f.type)) for f in attrs.fields(cls)]

    def unstructure(model: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, hook in plan:
            if name == "raw":
                continue
            value = getattr(model, name)
            out[name] = None if value is None else hook(value)
        out.update(model.raw)
        return out

    return unstructure


def make_converter() -> cattrs.Converter:
    """Build the cattrs converter for OpenTicket JSON (see the module docstring).

    ``structure`` raises DecodeError (naming the field) for a payload it cannot read.
    """
    converter = cattrs.Converter(detailed_validation=False)
    converter.register_structure_hook(str, structure_str)
    converter.register_structure_hook(float, structure_float)
    converter.register_structure_hook(datetime, parse_datetime)
    converter.register_unstructure_hook(datetime, _format_datetime)
    converter.register_structure_hook_factory(
        _is_homogeneous_tuple, lambda cls: _tuple_hook(converter, cls)
    )
    converter.register_unstructure_hook_factory(
        _is_homogeneous_tuple,
        lambda cls: _list_unstructure_hook(converter, cls),
    )
    converter.register_structure_hook_factory(
        _is_model, lambda cls: _model_structure_hook(converter, cls)
    )
    converter.register_unstructure_hook_factory(
        _is_model, lambda cls: _model_unstructure_hook(converter, cls)
    )
    return converter


def _list_unstructure_hook(converter: cattrs.Converter, cls: Any) -> Callable[[Any], list[Any]]:
    item_hook = converter.get_unstructure_hook(get_args(cls)[0])
    return lambda items: [item_hook(item) for item in items]


#: The converter the client uses.
CONVERTER = make_converter()

# -- the reservation fast path ------------------------------------------------------

# Spelling -> position of the field (-1: no field), learned as keys are seen, so a
# known key costs one dict lookup instead of a normalisation each time.
_RESERVATION_SPELLINGS: dict[object, int] = {}
_PRODUCT_SPELLINGS: dict[object, int] = {}
_RESERVATION_NAMES = (
    "guid",
    "shop_guid",
    "ticket_guid",
    "event_date_guid",
    "products",
    "reserved_at",
    "expires_at",
)
_PRODUCT_NAMES = ("guid", "name")
_RESERVATION_KEYS = frozenset(_RESERVATION_NAMES)
_PRODUCT_KEYS = frozenset(_PRODUCT_NAMES)


def _learn(key: object, spellings: dict[object, int], names: tuple[str, ...]) -> int:
    name = snake_key(key) if type(key) is str else ""
    index = names.index(name) if name in names else -1
    if len(spellings) < _SNAKE_CACHE_LIMIT:
        spellings[key] = index
    return index


def _sort(
    data: dict[Any, Any], spellings: dict[object, int], names: tuple[str, ...]
) -> tuple[list[Any], dict[Any, Any] | None]:
    """Split ``data`` into field values (by position) and the other keys (``raw``).

    The first spelling of a field wins; a second one goes to ``raw``, so nothing
    is lost and nothing is stored twice.
    """
    slots: list[Any] = [None] * len(names)
    raw: dict[Any, Any] | None = None
    for key, value in data.items():
        try:
            index = spellings[key]
        except KeyError:
            index = _learn(key, spellings, names)
        if index >= 0 and slots[index] is None:
            slots[index] = value
        else:
            if raw is None:
                raw = {}
            raw[key] = value
    return slots, raw


def _slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of a frozen, slotted attrs class, for building it directly.

    A frozen attrs ``__init__`` sets each field through ``object.__setattr__``;
    on the reserve hot path that indirection is the largest part of building a
    reservation. Writing the slots skips only that, which is sound for a class
    with no validators, converters, setattr hooks or (pre/post) init hooks.
    Checked here at import, with ``names`` required to be exactly its fields, so
    a model that changes fails loudly here instead of being built wrong.
    """
    fields = attrs.fields(cls)
    if (
        tuple(f.name for f in fields) != names
        or "__slots__" not in cls.__dict__
        or hasattr(cls, "__attrs_post_init__")
        or hasattr(cls, "__attrs_pre_init__")
        or any(f.validator or f.converter or f.on_setattr for f in fields)
    ):
        raise TypeError(f"{cls.__name__} can no longer be built by writing its slots")
    return tuple(cls.__dict__[name].__set__ for name in names)


_new = object.__new__
_P_GUID, _P_NAME, _P_RAW = _slot_setters(Product, ("guid", "name", "raw"))
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
) = _slot_setters(Reservation, (*_RESERVATION_NAMES, "deadline", "raw"))


def _product(value: Any) -> Product:
    if type(value) is not dict:
        raise DecodeError(f"expected an object for Product, got {json_kind(value)}")
    guid = value.get("guid")
    name = value.get("name")
    raw: dict[Any, Any] | None = None
    if len(value) != 2 or guid is None or name is None:
        for key in value:
            if key in _PRODUCT_KEYS:
                continue
            index = _PRODUCT_SPELLINGS.get(key)
            if index is None:
                index = _learn(key, _PRODUCT_SPELLINGS, _PRODUCT_NAMES)
            if index >= 0:  # another spelling of a field: sort key by key
                (guid, name), raw = _sort(value, _PRODUCT_SPELLINGS, _PRODUCT_NAMES)
                break
            if raw is None:
                raw = {}
            raw[key] = value[key]
    if guid is None:
        raise DecodeError("Product is missing a required field", field="guid")
    if type(guid) is not str:
        try:
            guid = structure_str(guid)
        except DecodeError as error:
            raise field_error(error, "guid") from None
    if name is not None and type(name) is not str:
        try:
            name = structure_str(name)
        except DecodeError as error:
            raise field_error(error, "name") from None
    product = _new(Product)
    _P_GUID(product, guid)
    _P_NAME(product, name)
    _P_RAW(product, MappingProxyType(raw) if raw else EMPTY_RAW)
    return product


def _timestamps(
    reserved: Any, expires: Any, sent_wall: datetime, latest: datetime, ticket_guid: str
) -> tuple[datetime, datetime]:
    """reserved_at and expires_at from their JSON values (sent_wall and latest if absent).

    The usual pair, two ISO 8601 texts in UTC, is remembered as the ticket's last
    timestamps: the reservations made in the same instant carry the same texts,
    and then share their datetimes (see _SHARED).
    """
    try:
        reserved_at = _from_iso(reserved)
        expires_at = _from_iso(expires)
    except (TypeError, ValueError):
        pass
    else:
        if reserved_at.tzinfo is UTC and expires_at.tzinfo is UTC:
            if len(_LAST_MOMENTS) >= _SHARED_LIMIT:
                _LAST_MOMENTS.clear()
            _LAST_MOMENTS[ticket_guid] = (reserved, reserved_at, expires, expires_at)
            return reserved_at, expires_at
    # anything else: absent, epoch seconds, an offset, no offset, or no date-time
    reserved_at = sent_wall if reserved is None else _moment(reserved, "reserved_at")
    expires_at = latest if expires is None else _moment(expires, "expires_at")
    return reserved_at, expires_at


def _moment(value: Any, field: str) -> datetime:
    try:
        return parse_datetime(value)
    except DecodeError as error:
        raise field_error(error, field) from None


def _one_product(value: Any) -> tuple[Product, ...]:
    # The usual answer has one product of exactly {"guid", "name"}: its tuple is
    # shared by every reservation of the ticket, and found without building it
    if type(value) is dict and len(value) == 2:
        guid, name = value.get("guid"), value.get("name")
        if type(guid) is str and type(name) is str:
            key = (guid, name)
            products = _ONE_PRODUCT.get(key)
            if products is None:
                products = (_product(value),)
                _remember(_ONE_PRODUCT, key, products)
            return products
    return (_product(value),)


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


def _guid_value(value: Any) -> str:
    if value is None:
        raise DecodeError("Reservation is missing a required field", field="guid")
    try:
        return structure_str(value)
    except DecodeError as error:
        raise field_error(error, "guid") from None


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
    # Answers for one ticket differ only in guid and timestamps: when the rest
    # equals the last answer's (see _Template), its decoded form is reused
    parts: _Parts | None = None
    template = _TEMPLATES.get(ticket_guid)
    if template is not None and len(data) == template.size and template.shop_guid == shop_guid:
        try:
            stable = template.pick_stable(data)
            guid, reserved, expires = template.pick_varying(data)
        except KeyError:  # as many keys, spelled otherwise
            stable = _NO_VALUES
        if stable == template.stable:
            parts = template.parts
        elif stable[:4] == template.stable[:4]:
            parts = template.with_unknown_keys(stable, ticket_guid)
    if parts is None:
        guid, reserved, expires, parts = _reservation_parts(data, shop_guid, ticket_guid)
    shop, ticket, event_date, products, raw = parts
    if type(guid) is not str:
        guid = _guid_value(guid)
    latest = sent_wall + ttl
    last = _LAST_MOMENTS.get(ticket_guid, _NO_MOMENTS)
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
    _R_PRODUCTS(reservation, products)
    _R_RESERVED_AT(reservation, reserved_at)
    _R_EXPIRES_AT(reservation, expires_at)
    _R_DEADLINE(reservation, deadline)
    _R_RAW(reservation, raw)
    return reservation


#: shop_guid, ticket_guid, event_date_guid, products and raw, decoded
_Parts = tuple[str, str, str | None, tuple[Product, ...], Mapping[str, Any]]


def _reservation_parts(
    data: dict[Any, Any], shop_guid: str, ticket_guid: str
) -> tuple[str, Any, Any, _Parts]:
    """Decode an answer no template matched, key by key.

    Returns the checked guid, the reserved_at and expires_at values as sent,
    and the other fields decoded; offers the answer as the ticket's template.
    """
    # The documented snake_case keys are read directly; only a key outside them
    # costs a look (it goes to raw, or, if it spells a field in another casing,
    # sends the whole payload through the key-by-key sort).
    get = data.get
    guid = get("guid")
    shop = get("shop_guid")
    ticket = get("ticket_guid")
    event_date = get("event_date_guid")
    products = get("products")
    reserved = get("reserved_at")
    expires = get("expires_at")
    raw: dict[Any, Any] | None = None
    if len(data) != 7 or None in (guid, shop, ticket, event_date, products, reserved, expires):
        for key in data:
            if key in _RESERVATION_KEYS:
                continue
            index = _RESERVATION_SPELLINGS.get(key)
            if index is None:
                index = _learn(key, _RESERVATION_SPELLINGS, _RESERVATION_NAMES)
            if index >= 0:
                slots, raw = _sort(data, _RESERVATION_SPELLINGS, _RESERVATION_NAMES)
                guid, shop, ticket, event_date, products, reserved, expires = slots
                break
            if raw is None:
                raw = {}
            raw[key] = data[key]
    guid = _guid_value(guid)
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
        if products is None:
            products = ()
        elif type(products) is list and len(products) == 1:
            field = "products[0]"
            products = _one_product(products[0])
        else:
            products = _products(products)
            if all(product.raw is EMPTY_RAW for product in products):
                products = _share(products)
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
        shared = _SHARED.get(event_date)
        if shared is None:
            _remember(_SHARED, event_date, event_date)
        else:
            event_date = shared
    if not raw:
        frozen_raw = EMPTY_RAW
    else:
        # the unknown keys of a burst of reserves are alike: equal ones share a view,
        # if equal means the same (see _plain: 1 == 1.0 == true)
        last_raw, frozen_raw = _LAST_RAW[0]  # one read: clients in other threads
        if raw != last_raw or not _plain(raw):
            frozen_raw = MappingProxyType(raw)
            _LAST_RAW[0] = (raw, frozen_raw)
    parts: _Parts = (shop, ticket, event_date, products, frozen_raw)
    # the second answer for a ticket (or one its template did not fit) may become
    # its template: a ticket reserved once never pays for one
    if ticket_guid in _TEMPLATES:
        _Template.offer(data, shop_guid, ticket_guid, parts)
    else:
        _remember(_TEMPLATES, ticket_guid, None)
    return guid, reserved, expires, parts


def _plain(value: Any) -> bool:
    """True for strings and nulls, and arrays and objects of nothing else.

    JSON equal to such a value is that very value (no number equals a string,
    while 1 == 1.0 == true), so it decodes the same: what a template may stand for.
    """
    pending = [value]  # a loop, not recursion: an answer may nest deep
    while pending:
        item = pending.pop()
        if item is None or type(item) is str:
            continue
        if type(item) is list or type(item) is tuple:
            pending.extend(item)
        elif type(item) is dict:  # JSON object keys are strings
            pending.extend(item.values())
        else:
            return False
    return True


class _Template:
    """The last answer for a ticket, for the next ones that repeat it.

    ``pick_varying`` reads guid, reserved_at and expires_at, ``pick_stable`` the
    rest (shop, ticket, event date, products, the unknown keys), both from an
    answer with exactly this template's keys (``size`` of them). When the rest
    equals ``stable``, ``parts`` is what it decodes to, shared objects included.
    Only answers whose rest is plain JSON (see :func:`_plain`) and whose products
    have no unknown keys (those are never shared) become templates: an equal
    answer then decodes to exactly these parts, and reusing them skips no check
    that could fail.
    """

    __slots__ = ("parts", "pick_stable", "pick_varying", "shop_guid", "size", "stable", "unknown")

    def __init__(
        self,
        size: int,
        shop_guid: str,
        pick_varying: Callable[[dict[Any, Any]], tuple[Any, ...]],
        pick_stable: Callable[[dict[Any, Any]], tuple[Any, ...]],
        stable: tuple[Any, ...],
        unknown: tuple[Any, ...],
        parts: _Parts,
    ) -> None:
        self.size = size
        self.shop_guid = shop_guid
        self.pick_varying = pick_varying
        self.pick_stable = pick_stable
        self.stable = stable
        self.unknown = unknown
        self.parts = parts

    @classmethod
    def offer(cls, data: dict[Any, Any], shop_guid: str, ticket_guid: str, parts: _Parts) -> None:
        """Make ``data`` the ticket's template, if it qualifies (see the class)."""
        layout = _layout(data)
        if layout is None or any(product.raw is not EMPTY_RAW for product in parts[3]):
            return
        size, pick_varying, pick_stable, unknown = layout
        stable = pick_stable(data)
        if _plain(stable):
            template = cls(size, shop_guid, pick_varying, pick_stable, stable, unknown, parts)
            _remember(_TEMPLATES, ticket_guid, template)

    def with_unknown_keys(self, stable: tuple[Any, ...], ticket_guid: str) -> _Parts:
        """The parts for an answer whose unknown keys alone changed; it becomes the template."""
        raw = MappingProxyType(dict(zip(self.unknown, stable[4:], strict=True)))
        parts: _Parts = (*self.parts[:4], raw)
        if _plain(stable[4:]):
            template = _Template(
                self.size,
                self.shop_guid,
                self.pick_varying,
                self.pick_stable,
                stable,
                self.unknown,
                parts,
            )
            _remember(_TEMPLATES, ticket_guid, template)
        return parts


#: the number of keys, the readers of the varying and the stable values (see
#: _Template), and the unknown keys of one key layout
_Layout = tuple[
    int,
    Callable[[dict[Any, Any]], tuple[Any, ...]],
    Callable[[dict[Any, Any]], tuple[Any, ...]],
    tuple[Any, ...],
]


def _layout(data: dict[Any, Any]) -> _Layout | None:
    """The layout of ``data``'s keys; None if a field is missing or spelled twice."""
    keys = tuple(data)
    try:
        return _LAYOUTS[keys]
    except KeyError:  # a server uses one or two layouts: this is seldom
        pass
    spelled: list[Any] = [None] * len(_RESERVATION_NAMES)
    unknown = []
    layout: _Layout | None = None
    for key in keys:
        index = _RESERVATION_SPELLINGS.get(key)
        if index is None:
            index = _learn(key, _RESERVATION_SPELLINGS, _RESERVATION_NAMES)
        if index < 0:
            unknown.append(key)
        elif spelled[index] is None:
            spelled[index] = key
        else:
            break
    else:
        if None not in spelled:
            guid, shop, ticket, event_date, products, reserved, expires = spelled
            layout = (
                len(keys),
                itemgetter(guid, reserved, expires),
                itemgetter(shop, ticket, event_date, products, *unknown),
                tuple(unknown),
            )
    _remember(_LAYOUTS, keys, layout)
    return layout


_T = TypeVar("_T")

# Equal values seen recently, shared by every reservation that carries them: a
# manager keeps one reservation per hold, and the holds of one ticket repeat most
# of it. Each table is bounded: when it fills it starts again, so it never grows
# with traffic. _ONE_PRODUCT is keyed by the JSON text it decodes; _TEMPLATES and
# _LAST_MOMENTS (reserved_at and expires_at, as texts and decoded) by the ticket
# GUID of the request; _LAYOUTS by the keys of an answer, in order.
_SHARED: dict[Any, Any] = {}
_LAST_MOMENTS: dict[str, tuple[str, datetime, str, datetime]] = {}
_ONE_PRODUCT: dict[tuple[str, str], tuple[Product, ...]] = {}
_TEMPLATES: dict[str, _Template | None] = {}  # None: the ticket came once
_LAYOUTS: dict[tuple[Any, ...], _Layout | None] = {}
# the last unknown keys seen and their read-only view (raw may hold unhashable values)
_LAST_RAW: list[tuple[dict[Any, Any], Mapping[str, Any]]] = [({}, EMPTY_RAW)]
_SHARED_LIMIT = 4096


def _remember(table: dict[Any, Any], key: Any, value: Any) -> None:
    if len(table) >= _SHARED_LIMIT:
        table.clear()
    table[key] = value


def _share(value: _T) -> _T:
    shared: _T | None = _SHARED.get(value)
    if shared is None:
        _remember(_SHARED, value, value)
        return value
    return shared


def _products(value: Any) -> tuple[Product, ...]:
    if type(value) is not list:
        raise DecodeError(f"expected an array, got {json_kind(value)}")
    products = []
    for index, item in enumerate(value):
        try:
            products.append(_product(item))
        except DecodeError as error:
            raise field_error(error, f"[{index}]") from None
    return tuple(products)

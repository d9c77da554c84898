"""The stateless parts of the reservation decoder: key layouts, values, models.

``_reserve_decoder`` decides what answers share and remembers it; this module does
the reading. It reads the *layout* of an answer's keys (which key spells which
field, in any casing, and which keys are unknown), decodes products, the
reservation GUID and timestamps, and builds the frozen models by writing their
slots, all by the converter's rules (``_wire``). Nothing here keeps state: the
layouts it reads go to the table it is given, which belongs to the decoder's
memory.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import MappingProxyType
from typing import Any

import attrs

from ._exceptions import DecodeError
from ._models import EMPTY_RAW, Product
from ._wire import field_error, json_kind, parse_datetime, snake_key, structure_str

__all__ = [
    "PRODUCT_NAMES",
    "RESERVATION_NAMES",
    "Layout",
    "guid_value",
    "layout_of",
    "moment",
    "named_product",
    "plain",
    "product",
    "products",
    "read_layout",
    "slot_setters",
]

#: The fields of a reservation an answer carries, in the order of ``Reservation``.
RESERVATION_NAMES = (
    "guid",
    "shop_guid",
    "ticket_guid",
    "event_date_guid",
    "products",
    "reserved_at",
    "expires_at",
)
#: The fields of a product an answer carries, in the order of ``Product``.
PRODUCT_NAMES = ("guid", "name")

#: Stands for a field an answer leaves out: no JSON object has it as a key, so
#: ``data.get(ABSENT)`` is None, as for a field sent as null.
ABSENT = object()

#: The key each field is spelled with (``ABSENT`` when left out), in the order of
#: the names, and the keys that spell no field (they go to ``raw``), in order.
Layout = tuple[tuple[object, ...], tuple[object, ...]]


def read_layout(keys: tuple[object, ...], names: tuple[str, ...]) -> Layout:
    """The layout of an object with these keys, for a model with these field names.

    A key spells a field if it normalises to its name (``snake_key``: any casing).
    The first spelling of a field wins, as in the converter; a second one is an
    unknown key, so nothing is lost and nothing is stored twice.
    """
    fields: list[object] = [ABSENT] * len(names)
    unknown: list[object] = []
    for key in keys:
        name = snake_key(key) if type(key) is str else ""
        index = names.index(name) if name in names else -1
        if index >= 0 and fields[index] is ABSENT:
            fields[index] = key
        else:
            unknown.append(key)
    return tuple(fields), tuple(unknown)


def layout_of(
    data: dict[Any, Any], names: tuple[str, ...], layouts: dict[Any, Layout], limit: int
) -> Layout:
    """The layout of ``data``'s keys, from ``layouts`` (keyed by the keys in order).

    A layout not in the table is read and put there; a full table (``limit``
    entries) is emptied first: a server uses one or two layouts per model, so
    this is seldom.
    """
    keys = tuple(data)
    layout = layouts.get(keys)
    if layout is None:
        layout = read_layout(keys, names)
        if len(layouts) >= limit:
            layouts.clear()
        layouts[keys] = layout
    return layout


def slot_setters(cls: type, names: tuple[str, ...]) -> tuple[Callable[[Any, Any], None], ...]:
    """The slot setters of a frozen, slotted attrs class, for building it directly.

    A frozen attrs ``__init__`` sets each field through ``object.__setattr__``;
    on the reserve hot path that indirection is the largest part of building a
    reservation. Writing the slots skips only that, which is sound for a class
    with no validators, converters, setattr hooks or (pre/post) init hooks.
    Checked at import, with ``names`` required to be exactly its fields, so a
    model that changes fails loudly there instead of being built wrong: raises
    TypeError if ``cls`` no longer qualifies.
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
_P_GUID, _P_NAME, _P_RAW = slot_setters(Product, ("guid", "name", "raw"))


def product(value: Any, layouts: dict[Any, Layout], limit: int) -> Product:
    """Decode one product; raises DecodeError naming the field (``guid``, ``name``).

    Its key layout comes from ``layouts`` (see :func:`layout_of`).
    """
    if type(value) is not dict:
        raise DecodeError(f"expected an object for Product, got {json_kind(value)}")
    # the layout's lookup is layout_of's first line, done here: one call less per product
    (guid_key, name_key), unknown = layouts.get(tuple(value)) or layout_of(
        value, PRODUCT_NAMES, layouts, limit
    )
    guid = value.get(guid_key)
    name = value.get(name_key)
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
    decoded = _new(Product)
    _P_GUID(decoded, guid)
    _P_NAME(decoded, name)
    if unknown:
        raw: dict[Any, Any] = {}
        for key in unknown:  # a loop: a comprehension is a function call of its own
            raw[key] = value[key]
        _P_RAW(decoded, MappingProxyType(raw))
    else:
        _P_RAW(decoded, EMPTY_RAW)
    return decoded


def named_product(guid: str, name: str) -> Product:
    """The product of an object of exactly the keys ``guid`` and ``name``, both strings.

    Such an object has nothing to normalise, check or keep in ``raw``: no layout
    to look up, which matters to a client renewing more tickets than the
    decoder's tables hold (each of their answers is a product never seen).
    """
    decoded = _new(Product)
    _P_GUID(decoded, guid)
    _P_NAME(decoded, name)
    _P_RAW(decoded, EMPTY_RAW)
    return decoded


def products(value: Any, layouts: dict[Any, Layout], limit: int) -> tuple[Product, ...]:
    """Decode an array of products; raises DecodeError naming the field (``[1].guid``)."""
    if type(value) is not list:
        raise DecodeError(f"expected an array, got {json_kind(value)}")
    decoded = []
    for index, item in enumerate(value):
        try:
            decoded.append(product(item, layouts, limit))
        except DecodeError as error:
            raise field_error(error, f"[{index}]") from None
    return tuple(decoded)


def guid_value(value: Any) -> str:
    """The reservation's own GUID; raises DecodeError (field ``guid``) if absent or bad."""
    if value is None:
        raise DecodeError("Reservation is missing a required field", field="guid")
    try:
        return structure_str(value)
    except DecodeError as error:
        raise field_error(error, "guid") from None


def moment(value: Any, field: str) -> datetime:
    """Decode a timestamp as the converter does; raises DecodeError naming ``field``."""
    try:
        return parse_datetime(value)
    except DecodeError as error:
        raise field_error(error, field) from None


def plain(value: Any) -> bool:
    """True for strings and nulls, and arrays and objects of nothing else.

    JSON equal to such a value is that very value (no number equals a string,
    while 1 == 1.0 == true), so it decodes the same: what may be shared by equality.
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

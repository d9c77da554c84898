"""The stateless parts of the reservation decoder: fields, values, layouts, templates.

``_reserve_decoder`` decides which answers must be read key by key and what they
share; this module does the reading. It finds the field a key spells in any
casing, decodes products, the reservation GUID and timestamps, builds the frozen
models by writing their slots, and reads the layout of an answer's keys and the
:class:`Template` that stands for it, all by the converter's rules (``_wire``).
Nothing here keeps state: the key spellings it learns go to the tables it is
given, which belong to the decoder's memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from operator import itemgetter
from types import MappingProxyType
from typing import Any

import attrs

from ._exceptions import DecodeError
from ._models import EMPTY_RAW, Product
from ._wire import field_error, json_kind, parse_datetime, snake_key, structure_str

__all__ = [
    "RESERVATION_KEYS",
    "RESERVATION_NAMES",
    "SPELLINGS_LIMIT",
    "Layout",
    "Parts",
    "Spellings",
    "Template",
    "guid_value",
    "learn",
    "moment",
    "plain",
    "product",
    "products",
    "read_layout",
    "slot_setters",
    "sort",
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
#: The documented (snake_case) spellings, read without a look at the spellings.
RESERVATION_KEYS = frozenset(RESERVATION_NAMES)
_PRODUCT_NAMES = ("guid", "name")
_PRODUCT_KEYS = frozenset(_PRODUCT_NAMES)
#: The most spellings one table learns (see ``_reserve_decoder``, Limits).
SPELLINGS_LIMIT = 4096

#: Key as sent -> the position of the field it spells (-1: no field), learned as
#: keys are seen, so a known key costs one dict lookup instead of a normalisation.
Spellings = dict[object, int]


def learn(key: object, spellings: Spellings, names: tuple[str, ...]) -> int:
    """The position in ``names`` of the field ``key`` spells (-1: none), learned.

    Past ``SPELLINGS_LIMIT`` entries the table stops growing: a new key is then
    normalised each time it comes.
    """
    name = snake_key(key) if type(key) is str else ""
    index = names.index(name) if name in names else -1
    if len(spellings) < SPELLINGS_LIMIT:
        spellings[key] = index
    return index


def sort(
    data: dict[Any, Any], spellings: Spellings, names: tuple[str, ...]
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
            index = learn(key, spellings, names)
        if index >= 0 and slots[index] is None:
            slots[index] = value
        else:
            if raw is None:
                raw = {}
            raw[key] = value
    return slots, raw


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


def product(value: Any, spellings: Spellings) -> Product:
    """Decode one product; raises DecodeError naming the field (``guid``, ``name``)."""
    if type(value) is not dict:
        raise DecodeError(f"expected an object for Product, got {json_kind(value)}")
    guid = value.get("guid")
    name = value.get("name")
    raw: dict[Any, Any] | None = None
    if len(value) != 2 or guid is None or name is None:
        for key in value:
            if key in _PRODUCT_KEYS:
                continue
            index = spellings.get(key)
            if index is None:
                index = learn(key, spellings, _PRODUCT_NAMES)
            if index >= 0:  # another spelling of a field: sort key by key
                (guid, name), raw = sort(value, spellings, _PRODUCT_NAMES)
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
    decoded = _new(Product)
    _P_GUID(decoded, guid)
    _P_NAME(decoded, name)
    _P_RAW(decoded, MappingProxyType(raw) if raw else EMPTY_RAW)
    return decoded


def products(value: Any, spellings: Spellings) -> tuple[Product, ...]:
    """Decode an array of products; raises DecodeError naming the field (``[1].guid``)."""
    if type(value) is not list:
        raise DecodeError(f"expected an array, got {json_kind(value)}")
    decoded = []
    for index, item in enumerate(value):
        try:
            decoded.append(product(item, spellings))
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


#: The number of keys, the readers of the varying values (guid, reserved_at,
#: expires_at) and of the stable ones (shop, ticket, event date, products, then the
#: unknown keys' values), and the unknown keys of one key layout
Layout = tuple[
    int,
    Callable[[dict[Any, Any]], tuple[Any, ...]],
    Callable[[dict[Any, Any]], tuple[Any, ...]],
    tuple[Any, ...],
]


def read_layout(keys: tuple[Any, ...], spellings: Spellings) -> Layout | None:
    """The layout of an answer with these keys; None if a field is missing or spelled twice.

    ``spellings`` is the reservation fields' table (see :func:`learn`).
    """
    spelled: list[Any] = [None] * len(RESERVATION_NAMES)
    unknown = []
    for key in keys:
        index = spellings.get(key)
        if index is None:
            index = learn(key, spellings, RESERVATION_NAMES)
        if index < 0:
            unknown.append(key)
        elif spelled[index] is None:
            spelled[index] = key
        else:
            return None
    if None in spelled:
        return None
    guid, shop, ticket, event_date, products_key, reserved, expires = spelled
    return (
        len(keys),
        itemgetter(guid, reserved, expires),
        itemgetter(shop, ticket, event_date, products_key, *unknown),
        tuple(unknown),
    )


#: shop_guid, ticket_guid, event_date_guid, products and raw, decoded
Parts = tuple[str, str, str | None, tuple[Product, ...], Mapping[str, Any]]


class Template:
    """An answer for a ticket, for the next ones that repeat it.

    ``pick_varying`` reads guid, reserved_at and expires_at, ``pick_stable`` the
    rest (shop, ticket, event date, products, the unknown keys), both from an
    answer with exactly this template's keys (``size`` of them). When the rest
    equals ``stable``, ``parts`` is what it decodes to, shared objects included.
    Only answers whose rest is plain JSON (see :func:`plain`) and whose products
    have no unknown keys (those are never shared) become templates: an equal
    answer then decodes to exactly these parts, and reusing them skips no check
    that could fail.
    """

    __slots__ = ("parts", "pick_stable", "pick_varying", "shop_guid", "size", "stable", "unknown")

    def __init__(
        self, shop_guid: str, layout: Layout, stable: tuple[Any, ...], parts: Parts
    ) -> None:
        """A template of ``layout`` standing for ``stable``, which decodes to ``parts``."""
        self.size, self.pick_varying, self.pick_stable, self.unknown = layout
        self.shop_guid = shop_guid
        self.stable = stable
        self.parts = parts

    @classmethod
    def of(
        cls, data: dict[Any, Any], shop_guid: str, parts: Parts, layout: Layout | None
    ) -> Template | None:
        """``data``, decoded to ``parts``, as a template; None if it does not qualify."""
        if layout is None or any(item.raw is not EMPTY_RAW for item in parts[3]):
            return None
        stable = layout[2](data)
        return cls(shop_guid, layout, stable, parts) if plain(stable) else None

    def with_unknown_values(self, stable: tuple[Any, ...]) -> tuple[Parts, Template | None]:
        """The parts for an answer whose unknown values alone changed, and its template.

        The template is None if the new values do not qualify (see the class).
        """
        raw = MappingProxyType(dict(zip(self.unknown, stable[4:], strict=True)))
        parts: Parts = (*self.parts[:4], raw)
        if not plain(stable[4:]):
            return parts, None
        layout = (self.size, self.pick_varying, self.pick_stable, self.unknown)
        return parts, Template(self.shop_guid, layout, stable, parts)

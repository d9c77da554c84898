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
reservation, because reserve is the hot path (``_reserve_decoder``), and the
token response, whose expiry fields are relative to the time of the answer
(``_token_decoder``).

Encoding (``unstructure``) is exact: field names in snake_case, ``raw`` keys
merged back at top level, datetimes as ISO 8601 with ``Z``. Structuring that
output again gives an equal model, so stores can persist models with it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Container, Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, get_args, get_origin

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
    "field_error",
    "json_kind",
    "known_fields",
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


def known_fields(
    data: Mapping[Any, Any], names: Container[str]
) -> tuple[dict[str, Any], dict[Any, Any]]:
    """Split an answer's keys into its known fields and the rest (kept as ``raw``).

    A key counts under its snake_case spelling; the first spelling of a field
    wins, and a later one (``eventDate`` after ``event_date``) goes to ``raw``.
    """
    values: dict[str, Any] = {}
    raw: dict[Any, Any] = {}
    for key, value in data.items():
        name = snake_key(key) if type(key) is str else ""
        if name in names and name not in values:
            values[name] = value
        else:
            raw[key] = value
    return values, raw


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
        values, raw = known_fields(data, names)
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

"""Frozen values the SDK hands out and takes in.

Models decoded from OpenTicket JSON keep every key they have no field for in
``raw`` (read-only), so nothing the server sends is lost while the real response
shapes are still unverified. Keys that became fields are not stored twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import attrs

from ._exceptions import InvalidArgument

__all__ = [
    "EMPTY_RAW",
    "Hosts",
    "Order",
    "OrderTicket",
    "PaymentMethod",
    "Product",
    "Receiver",
    "Reservation",
    "TokenSet",
    "User",
]

#: The shared empty ``raw`` mapping: most models have no unknown keys.
EMPTY_RAW: Mapping[str, Any] = MappingProxyType({})


class _Decoded:
    """Pickling for the models with a read-only ``raw``.

    A mappingproxy does not pickle, so attrs' own pickling fails on every one of
    them (and on the holds and exceptions that carry them). Pickle the fields
    with ``raw`` as a plain dict, and rebuild through ``__init__``.
    """

    __slots__ = ()

    def __reduce__(self) -> tuple[object, ...]:
        values = attrs.asdict(self, recurse=False)  # type: ignore[arg-type]
        values["raw"] = dict(values["raw"])
        return (_rebuild, (type(self), values))


def _rebuild(cls: Callable[..., _Decoded], values: dict[str, Any]) -> _Decoded:
    raw = values.pop("raw")
    return cls(**values, raw=MappingProxyType(raw) if raw else EMPTY_RAW)


def _base_url(value: str) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidArgument(f"host base URL must be http(s)://host[/path], got {text!r}")
    if parts.query or parts.fragment:
        raise InvalidArgument(f"host base URL must not carry a query or fragment: {text!r}")
    return text.rstrip("/")


@attrs.frozen
class Hosts:
    """Base URLs of the three OpenTicket roles. Each may carry a path prefix.

    The defaults are the real OpenTicket hosts; point them at Eventix or Weeztix
    hosts, or at :class:`openticket_async.testing.FakeOpenTicket`'s ``hosts``.
    """

    auth: str = attrs.field(default="https://auth.openticket.tech", converter=_base_url)
    api: str = attrs.field(default="https://api.openticket.tech", converter=_base_url)
    shop: str = attrs.field(default="https://shop.api.openticket.tech", converter=_base_url)


@attrs.frozen
class Product(_Decoded):
    """A product line that comes with a reservation and goes into the order."""

    guid: str
    name: str | None = None
    raw: Mapping[str, Any] = attrs.field(default=EMPTY_RAW, repr=False, eq=False)


@attrs.frozen
class Reservation(_Decoded):
    """One reserved ticket, valid until ``expires_at``.

    ``deadline`` is the same moment on the client's monotonic clock: the time the
    reserve request was *sent* plus the TTL, or the server's expiry if that is
    earlier. The manager schedules on ``deadline``, never on wall time.
    """

    guid: str
    shop_guid: str
    ticket_guid: str
    event_date_guid: str | None
    products: tuple[Product, ...]
    reserved_at: datetime
    expires_at: datetime
    deadline: float = attrs.field(repr=False)
    raw: Mapping[str, Any] = attrs.field(default=EMPTY_RAW, repr=False, eq=False)


@attrs.frozen
class PaymentMethod(_Decoded):
    """A payment provider of a shop; its ``guid`` goes into the order."""

    guid: str
    name: str | None = None
    raw: Mapping[str, Any] = attrs.field(default=EMPTY_RAW, repr=False, eq=False)


@attrs.frozen
class Receiver:
    """Who receives the tickets of an order."""

    email: str
    firstname: str
    lastname: str
    locale: str = "en_GB"


@attrs.frozen
class OrderTicket(_Decoded):
    """One ticket inside an order; ``ticket_number`` is its barcode once issued."""

    guid: str
    ticket_guid: str | None = None
    reservation_guid: str | None = None
    ticket_number: str | None = None
    raw: Mapping[str, Any] = attrs.field(default=EMPTY_RAW, repr=False, eq=False)


@attrs.frozen
class Order(_Decoded):
    """An order made from reservations."""

    guid: str
    shop_guid: str | None = None
    status: str | None = None
    currency: str | None = None
    tickets: tuple[OrderTicket, ...] = ()
    raw: Mapping[str, Any] = attrs.field(default=EMPTY_RAW, repr=False, eq=False)


@attrs.frozen
class User(_Decoded):
    """The user a token belongs to (``users/me``)."""

    guid: str
    default_company_id: str | None = None
    raw: Mapping[str, Any] = attrs.field(default=EMPTY_RAW, repr=False, eq=False)


@attrs.frozen
class TokenSet(_Decoded):
    """OAuth2 tokens with their expiry times (aware UTC datetimes).

    The repr never shows the tokens. Refresh tokens are single-use: persist each
    new ``TokenSet`` (see ``OAuth2(on_refresh=...)``) before using it.
    """

    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(repr=False)
    expires_at: datetime
    refresh_expires_at: datetime | None = None
    companies: tuple[str, ...] = ()
    raw: Mapping[str, Any] = attrs.field(default=EMPTY_RAW, repr=False, eq=False)

"""JSON answers of the fake server, in the shapes docs/wire.md fixes.

``style="snake"`` (the default) writes ``shop_guid``; ``style="camel"`` writes
``shopGuid``. Error bodies and the token answer keep their one documented form.

``product_shape`` sets what each product line of a reserve answer carries, so a
client meets the answers a real shop sends, not only the leanest:

- ``"lean"`` (the default): ``{"guid", "name"}``, the documented form;
- ``"flat"``: flat price fields besides, ``unit_price`` (cents) and ``currency``;
- ``"nested"``: ``price_lines``, an array of ``{"label", "amount", "currency"}``
  objects (a base price and a service fee).

The keys a model has no field for end in ``Product.raw``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from aiohttp import web

from .._clock import Clock
from .._exceptions import InvalidArgument
from ._inventory import LiveReservation
from ._values import FakePaymentMethod, OrderRecord

__all__ = ["ProductShape", "Shapes", "Style", "iso", "json_response"]

Style = Literal["snake", "camel"]
ProductShape = Literal["lean", "flat", "nested"]

_CAMEL = {
    "shop_guid": "shopGuid",
    "ticket_guid": "ticketGuid",
    "event_date_guid": "eventDateGuid",
    "reserved_at": "reservedAt",
    "expires_at": "expiresAt",
    "reservation_guid": "reservationGuid",
    "ticket_number": "ticketNumber",
    "created_at": "createdAt",
    "default_company_id": "defaultCompanyId",
    "unit_price": "unitPrice",
    "price_lines": "priceLines",
}
_PRODUCT_SHAPES = ("lean", "flat", "nested")


def iso(moment: datetime) -> str:
    """An aware UTC datetime as ISO 8601 with ``Z``; fractions only when present."""
    text = moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A JSON answer with an exact Content-Length (faults cut bodies by it)."""
    return web.Response(
        status=status,
        body=json.dumps(payload).encode(),
        content_type="application/json",
        headers=headers,
    )


class Shapes:
    """Renders reservations, orders, payment methods and the user in one style."""

    def __init__(
        self, clock: Clock, style: Style, send_expiry: bool, product_shape: ProductShape = "lean"
    ) -> None:
        if style not in ("snake", "camel"):
            raise InvalidArgument(f"style must be 'snake' or 'camel', got {style!r}")
        if product_shape not in _PRODUCT_SHAPES:
            raise InvalidArgument(
                f"product_shape must be 'lean', 'flat' or 'nested', got {product_shape!r}"
            )
        self._clock = clock
        self._send_expiry = send_expiry
        self._product_shape = product_shape
        self._key: Mapping[str, str] = _CAMEL if style == "camel" else {key: key for key in _CAMEL}

    def _wall_at(self, clock_time: float) -> datetime:
        # Every clock we run on keeps wall() a fixed offset from now().
        return self._clock.wall() + timedelta(seconds=clock_time - self._clock.now())

    def reservation(
        self, reservation: LiveReservation, product_names: Sequence[str]
    ) -> dict[str, Any]:
        """The answer to a reserve call."""
        key = self._key
        ticket = reservation.stock.ticket
        body: dict[str, Any] = {
            "guid": reservation.guid,
            key["shop_guid"]: ticket.shop_guid,
            key["ticket_guid"]: ticket.guid,
            key["event_date_guid"]: ticket.event_date_guid,
            "products": [
                self._product(index, guid, name)
                for index, (guid, name) in enumerate(
                    zip(ticket.product_guids, product_names, strict=True)
                )
            ],
        }
        if self._send_expiry:
            reserved = self._wall_at(reservation.reserved_at)
            ttl = timedelta(seconds=reservation.expires_at - reservation.reserved_at)
            body[key["reserved_at"]] = iso(reserved)
            body[key["expires_at"]] = iso(reserved + ttl)
        body["status"] = "reserved"
        return body

    def _product(self, index: int, guid: str, name: str) -> dict[str, Any]:
        line: dict[str, Any] = {"guid": guid, "name": name}
        price = 1500 + 500 * index  # cents: a fixed price per product, by position
        if self._product_shape == "flat":
            line[self._key["unit_price"]] = price
            line["currency"] = "EUR"
        elif self._product_shape == "nested":
            line[self._key["price_lines"]] = [
                {"label": "Base price", "amount": price, "currency": "EUR"},
                {"label": "Service fee", "amount": 150, "currency": "EUR"},
            ]
        return line

    def order(self, order: OrderRecord) -> dict[str, Any]:
        """An order, as created (201) or fetched (200)."""
        key = self._key
        return {
            "guid": order.guid,
            key["shop_guid"]: order.shop_guid,
            "status": order.status,
            "currency": order.currency,
            "receiver": dict(order.receiver),
            "tickets": [
                {
                    "guid": line.guid,
                    key["ticket_guid"]: line.ticket_guid,
                    key["reservation_guid"]: line.reservation_guid,
                    key["ticket_number"]: line.ticket_number,
                }
                for line in order.lines
            ],
            key["created_at"]: iso(self._wall_at(order.created_at)),
        }

    def user(self, guid: str, email: str, default_company: str) -> dict[str, Any]:
        """The current user (``users/me``)."""
        return {"guid": guid, "email": email, self._key["default_company_id"]: default_company}

    @staticmethod
    def payment_methods(methods: Sequence[FakePaymentMethod]) -> list[dict[str, Any]]:
        """A shop's payment methods, as a plain list."""
        return [{"guid": method.guid, "name": method.name} for method in methods]

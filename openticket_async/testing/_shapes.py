"""JSON answers of the fake server, in the shapes docs/wire.md fixes.

``style="snake"`` (the default) writes ``shop_guid``; ``style="camel"`` writes
``shopGuid``. Error bodies and the token answer keep their one documented form.
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

__all__ = ["Shapes", "Style", "iso", "json_response"]

Style = Literal["snake", "camel"]

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
}


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

    def __init__(self, clock: Clock, style: Style, send_expiry: bool) -> None:
        if style not in ("snake", "camel"):
            raise InvalidArgument(f"style must be 'snake' or 'camel', got {style!r}")
        self._clock = clock
        self._send_expiry = send_expiry
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
                {"guid": guid, "name": name}
                for guid, name in zip(ticket.product_guids, product_names, strict=True)
            ],
        }
        if self._send_expiry:
            reserved = self._wall_at(reservation.reserved_at)
            ttl = timedelta(seconds=reservation.expires_at - reservation.reserved_at)
            body[key["reserved_at"]] = iso(reserved)
            body[key["expires_at"]] = iso(reserved + ttl)
        body["status"] = "reserved"
        return body

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

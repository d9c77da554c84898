"""Values the fake server hands out: seeded objects and inspection records.

All are frozen snapshots; times are on the fake server's clock (``clock.now()``
seconds) unless a name says otherwise. No repr shows a token.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "FakePaymentMethod",
    "FakeShop",
    "FakeTicket",
    "OrderLine",
    "OrderRecord",
    "Refusal",
    "RequestRecord",
    "ReservationRecord",
    "TokenGrant",
]


@attrs.frozen
class FakeShop:
    """A shop seeded with :meth:`FakeOpenTicket.add_shop`."""

    guid: str
    name: str


@attrs.frozen
class FakeTicket:
    """A ticket seeded with :meth:`FakeOpenTicket.add_ticket`; stock lives on the server."""

    guid: str
    shop_guid: str
    name: str
    event_date_guid: str
    product_guids: tuple[str, ...]


@attrs.frozen
class FakePaymentMethod:
    """A payment method seeded with :meth:`FakeOpenTicket.add_payment_method`."""

    guid: str
    name: str


@attrs.frozen
class ReservationRecord:
    """A live reservation: it holds one unit until ``expires_at`` (clock time)."""

    guid: str
    ticket_guid: str
    shop_guid: str
    reserved_at: float
    expires_at: float


@attrs.frozen
class OrderLine:
    """One ticket of an order."""

    guid: str
    ticket_guid: str
    reservation_guid: str
    ticket_number: str
    product_guids: tuple[str, ...]


@attrs.frozen
class OrderRecord:
    """An order the fake server created."""

    guid: str
    shop_guid: str
    currency: str
    payment_method: str
    receiver: Mapping[str, Any]
    lines: tuple[OrderLine, ...]
    idempotency_key: str | None
    created_at: float
    status: str = "pending"


@attrs.frozen
class RequestRecord:
    """One request the fake server received (the bearer token itself is not kept)."""

    method: str
    path: str
    route: str | None
    had_auth: bool
    company: str | None
    idempotency_key: str | None
    time: float


@attrs.frozen
class TokenGrant:
    """One request to the token endpoint: which grant, and whether it was accepted.

    ``refresh_token`` is the refresh token presented (refresh grants only); it is
    kept for comparison in tests and never shown in the repr.
    """

    grant_type: str
    accepted: bool
    reason: str | None
    time: float
    refresh_token: str | None = attrs.field(default=None, repr=False)


class Refusal(Exception):
    """The fake API refuses a request: becomes a JSON error answer (see docs/wire.md)."""

    def __init__(
        self, status: int, error: str, message: str, *, oauth: bool = False, **extra: str
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.oauth = oauth
        self.extra = extra

    def body(self) -> dict[str, str]:
        """The JSON body: ``error``, the message and any extra keys.

        OAuth2 endpoints name the message ``error_description`` (RFC 6749);
        the API names it ``message``.
        """
        key = "error_description" if self.oauth else "message"
        return {"error": self.error, key: self.message, **self.extra}

"""What the ReservationManager needs from a client: the one typed seam to it.

``OpenTicketClient`` satisfies :class:`ReservingClient`; a test or an adapter
may give the manager anything else that does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ._clock import Clock
from ._config import RetryPolicy
from ._models import Order, Receiver, Reservation

__all__ = ["ReservingClient"]


class ReservingClient(Protocol):
    """The client as the manager uses it.

    ``retry`` is the backoff policy renewals wait by between their tries (each
    renewal sends one try; the lifecycle plans the next). ``clock`` is the clock
    the client stamps send times with, which the manager shares by default.
    """

    @property
    def clock(self) -> Clock: ...

    @property
    def retry(self) -> RetryPolicy: ...

    @property
    def reservation_ttl(self) -> float: ...

    async def reserve_ticket(
        self, shop_guid: str, ticket_guid: str, *, retry: RetryPolicy | None = None
    ) -> Reservation: ...

    async def create_order(
        self,
        shop_guid: str,
        reservations: Sequence[Reservation],
        *,
        receiver: Receiver,
        payment_method: str,
        currency: str,
        idempotency_key: str | None = None,
    ) -> Order: ...

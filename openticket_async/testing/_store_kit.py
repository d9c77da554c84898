"""The stores of one conformance test: one fake clock, and holds to save in them.

Kept apart from ``store_conformance`` so that the rule modules it is built from
(``_claim_rules``) can name it without importing the suite back.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from .._config import HoldPolicy
from .._hold import Hold
from .._models import Product, Reservation
from ..stores import ReservationStore
from ._clock import FakeClock

__all__ = ["StoreKit"]

SHOP = "3f1c2a9e-0000-4000-8000-000000000001"
TICKET = "3f1c2a9e-0000-4000-8000-000000000002"


class StoreKit:
    """Stores made by the test's factory, one clock, and helpers to make holds."""

    def __init__(self, factory: Callable[[], Any], clock: FakeClock) -> None:
        self.clock = clock
        self._factory = factory
        self._stores: list[ReservationStore] = []

    async def store(self) -> ReservationStore:
        """A new store from the factory, bound to the kit's clock."""
        made = self._factory()
        store: ReservationStore = await made if inspect.isawaitable(made) else made
        store.bind(self.clock, HoldPolicy())
        self._stores.append(store)
        return store

    def at(self, store: ReservationStore, seconds: float) -> float:
        """The due time ``seconds`` from now, on the store's time scale."""
        base = self.clock.wall().timestamp() if store.shared else self.clock.now()
        return base + seconds

    def hold(self, cart_id: str = "cart-1", **metadata: str) -> Hold:
        """A fresh ACTIVE hold with a reservation that drops in 480 s."""
        now = self.clock.now()
        wall = self.clock.wall()
        reservation = Reservation(
            guid=str(uuid.uuid4()),
            shop_guid=SHOP,
            ticket_guid=TICKET,
            event_date_guid=None,
            products=(Product(guid=str(uuid.uuid4()), name="Entrance"),),
            reserved_at=wall,
            expires_at=wall + timedelta(seconds=480),
            deadline=now + 480.0,
        )
        return Hold(
            id=uuid.uuid4().hex,
            cart_id=cart_id,
            shop_guid=SHOP,
            ticket_guid=TICKET,
            reservation=reservation,
            created_at=now,
            metadata=metadata or None,
        )

    async def close(self) -> None:
        """Close every store made."""
        for store in self._stores:
            await store.aclose()

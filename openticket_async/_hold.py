"""Holds: the stable handle for "a ticket the customer wants".

A :class:`Hold` outlives the reservations behind it: each renewal swaps in a new
:class:`~openticket_async.Reservation`, while the hold object, its ``id`` and its
``metadata`` stay the same. Applications keep the hold; events carry it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from ._models import Reservation

__all__ = ["TERMINAL_STATES", "Hold", "HoldState"]


class HoldState(enum.Enum):
    """Where a hold is in its life. The last four are terminal."""

    ACTIVE = "active"  #: a live reservation backs it; renewal is planned
    RENEWING = "renewing"  #: a renewal reserve call is on the wire
    AT_RISK = "at_risk"  #: renewal failed while the reservation still runs; retrying
    LOST = "lost"  #: the ticket could not be reserved again; the customer lost it
    EXPIRED = "expired"  #: it ran out on purpose (max_hold, idle cart, auto_renew off)
    RELEASED = "released"  #: the application removed it (or closed its cart)
    ORDERED = "ordered"  #: it went into an order

    # Members are singletons compared by identity, so the identity hash is exact,
    # and it keeps ``state in TERMINAL_STATES`` off Enum's Python-level hash.
    __hash__ = object.__hash__


TERMINAL_STATES = frozenset(
    {HoldState.LOST, HoldState.EXPIRED, HoldState.RELEASED, HoldState.ORDERED}
)


class Hold:
    """One ticket kept reserved for a cart.

    Read-only for applications: the manager alone changes ``state`` and
    ``reservation``. ``reservation`` is the current one (None once the hold is
    lost or expired and its last reservation dropped). ``renewals`` counts the
    successful renewals so far.
    """

    __slots__ = (
        "__weakref__",
        "_attempt",
        "_entry",
        "_fence",
        "_inflight",
        "_risk",
        "_warned",
        "cart_id",
        "created_at",
        "id",
        "metadata",
        "renewals",
        "reservation",
        "shop_guid",
        "state",
        "ticket_guid",
    )

    def __init__(
        self,
        *,
        id: str,
        cart_id: str,
        shop_guid: str,
        ticket_guid: str,
        reservation: Reservation | None,
        created_at: float,
        metadata: Mapping[str, Any] | None = None,
        state: HoldState = HoldState.ACTIVE,
        renewals: int = 0,
    ) -> None:
        self.id = id
        self.cart_id = cart_id
        self.shop_guid = shop_guid
        self.ticket_guid = ticket_guid
        self.reservation = reservation
        self.created_at = created_at
        self.metadata = metadata
        self.state = state
        self.renewals = renewals
        # bookkeeping of the manager and its store (opaque to everyone else):
        self._entry: object | None = None  # the store's handle on the pending action
        self._fence = 0  # the latest claim's fencing token (shared stores)
        self._attempt = 0  # failed renewal tries in a row
        self._inflight = False  # a renewal reserve call is on the wire
        self._risk = False  # the one try after the drop is planned or spent
        self._warned = False  # Expiring fired for the current reservation

    @property
    def done(self) -> bool:
        """True once the hold reached a terminal state."""
        return self.state in TERMINAL_STATES

    def __repr__(self) -> str:
        guid = self.reservation.guid if self.reservation is not None else None
        return (
            f"Hold(id={self.id!r}, ticket_guid={self.ticket_guid!r}, "
            f"state={self.state.name}, reservation={guid!r}, renewals={self.renewals})"
        )

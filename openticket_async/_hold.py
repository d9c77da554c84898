"""Holds: the stable handle for "a ticket the customer wants".

A :class:`Hold` outlives the reservations behind it: each renewal swaps in a new
:class:`~openticket_async.Reservation`, while the hold object, its ``id`` and its
``metadata`` stay the same. Applications keep the hold; events carry it.

Who writes which field
----------------------
============================  ==============================================
field                         written by
============================  ==============================================
``id``, ``cart_id``, ...      ``Hold()`` only (the cart, or a store's codec)
``state``, ``reservation``,   ``_lifecycle`` (every transition; ``_shortcuts``
``renewals``, ``_attempt``,   takes two of them the same way), and
``_risk``, ``_warned``        :func:`restore` for a record a shared store read
                              (the *persisted part*, see :func:`persisted`)
``_action``, ``_due``,        ``_lifecycle`` (and ``_shortcuts``) only: this
``_wire``, ``_planned``,      process's plan and the reserve on the wire,
                              never persisted
``_last_sent``, ``_retry_at``,
``_paused``
``_entry``                    ``stores.MemoryStore`` (its queue handle)
``_fence``                    the manager and a shared store's registry (the
                              latest claim's fencing token)
============================  ==============================================

Memory
------
A manager keeps every live hold in memory, so a hold's size is the SDK's memory
per hold (``benchmarks/scheduler_scale.py`` measures it). ``_attempt``,
``_retry_at``, ``_risk``, ``_paused`` and ``_fence`` stay at their defaults for
most holds all their life (they change only after a failed renewal, during a
checkout, or with a shared store), so they live in a side object made on the
first write of another value and dropped once all are back to their defaults.
A hold then has 18 slots instead of 22: 176 bytes, not 208, in CPython's
16-byte size classes. They stay attributes of the hold for every reader.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, NamedTuple

from ._models import Reservation

__all__ = ["TERMINAL_STATES", "Hold", "HoldState", "Persisted", "persisted", "restore"]


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
        "_action",
        "_due",
        "_entry",
        "_last_sent",
        "_more",
        "_planned",
        "_warned",
        "_wire",
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
        self._entry: object | None = None  # the store's handle on the pending action
        self._more: _Rare | None = None  # the rarely set fields, once one is set
        # the lifecycle's fields, written by ``_lifecycle`` alone:
        self._action: str | None = None  # the pending action as last planned
        self._due = 0.0  # ... and when it is due
        self._wire = 0  # a renewal reserve: 0 none, 1 queued, 2 sent
        self._planned = 0.0  # when the reserve on the wire was planned for
        self._last_sent = created_at  # when the latest reserve was sent
        self._warned = False  # Expiring fired for the current reservation

    # The rarely set fields (see "Memory" above). Reading one costs a property
    # call, far less than the 32 bytes they save per hold; the planner and the
    # lifecycle's shortcuts read ``_more`` itself on the renewal path.

    @property
    def _attempt(self) -> int:
        """Failed renewal tries in a row."""
        more = self._more
        return 0 if more is None else more.attempt

    @_attempt.setter
    def _attempt(self, value: int) -> None:
        more = self._more
        if more is None:
            if not value:
                return
            more = self._more = _Rare()
        more.attempt = value
        if not value:
            self._drop_more(more)

    @property
    def _retry_at(self) -> float:
        """A planned retry after a failure (0: none)."""
        more = self._more
        return 0.0 if more is None else more.retry_at

    @_retry_at.setter
    def _retry_at(self, value: float) -> None:
        more = self._more
        if more is None:
            if not value:
                return
            more = self._more = _Rare()
        more.retry_at = value
        if not value:
            self._drop_more(more)

    @property
    def _risk(self) -> bool:
        """The one try after the drop is planned or spent."""
        more = self._more
        return False if more is None else more.risk

    @_risk.setter
    def _risk(self, value: bool) -> None:
        more = self._more
        if more is None:
            if not value:
                return
            more = self._more = _Rare()
        more.risk = value
        if not value:
            self._drop_more(more)

    @property
    def _paused(self) -> bool:
        """Its cart is checking out: no renewal starts."""
        more = self._more
        return False if more is None else more.paused

    @_paused.setter
    def _paused(self, value: bool) -> None:
        more = self._more
        if more is None:
            if not value:
                return
            more = self._more = _Rare()
        more.paused = value
        if not value:
            self._drop_more(more)

    @property
    def _fence(self) -> int:
        """The latest claim's fencing token (shared stores; 0 for none)."""
        more = self._more
        return 0 if more is None else more.fence

    @_fence.setter
    def _fence(self, value: int) -> None:
        more = self._more
        if more is None:
            if not value:
                return
            more = self._more = _Rare()
        more.fence = value
        if not value:
            self._drop_more(more)

    def _drop_more(self, more: _Rare) -> None:
        # back to all defaults (a failure episode or a checkout is over): the
        # side object goes, so a hold that once failed costs no more than others
        if not (more.attempt or more.retry_at or more.risk or more.paused or more.fence):
            self._more = None

    @property
    def _inflight(self) -> bool:
        """A renewal reserve is queued or on the wire (store use)."""
        return self._wire != 0

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


class _Rare:
    """The fields of a :class:`Hold` that most holds keep at their defaults."""

    __slots__ = ("attempt", "fence", "paused", "retry_at", "risk")

    def __init__(self) -> None:
        self.attempt = 0
        self.retry_at = 0.0
        self.risk = False
        self.paused = False
        self.fence = 0


class Persisted(NamedTuple):
    """The part of a hold a shared store keeps beside its identity and reservation."""

    state: HoldState
    renewals: int
    attempt: int
    risk: bool
    warned: bool


def persisted(hold: Hold) -> Persisted:
    """What a shared store must keep of ``hold``'s lifecycle (its reservation aside)."""
    return Persisted(hold.state, hold.renewals, hold._attempt, hold._risk, hold._warned)


def restore(hold: Hold, reservation: Reservation | None, part: Persisted) -> bool:
    """Bring ``hold`` up to date with a record read back from a shared store.

    A record that knows fewer renewals than the object is older than it (this
    process renewed since the record was written, and its save is on the way):
    it is ignored, so a stale read never undoes a renewal. Returns whether the
    record was applied.
    """
    if part.renewals < hold.renewals:
        return False
    hold.reservation = reservation
    hold.state = part.state
    hold._action = None  # the store's plan is the one that counts now
    hold.renewals = part.renewals
    hold._attempt = part.attempt
    hold._risk = part.risk
    hold._warned = part.warned
    return True

"""What one shared store knows locally about its holds (pure: no I/O).

- ``objects``: the one :class:`Hold` object per hold id (weak values: a hold
  nobody here refers to any more is made anew from its record next time).
- ``plans``: the last (action, due) each live hold object was saved or claimed
  with: what a restore writes back after the shared backend lost its data.
- ``owned``: holds this store wrote last, kept (strongly) until a while after
  their due time, when another worker has surely claimed them: after a data loss
  the last writer restores the freshest record.
- ``fenced``: holds whose write-back was refused, kept (strongly) as long as
  ``owned`` keeps its holds. The claim that refused the write may be this
  store's own, of its own lease that lapsed while a renewal was on the wire:
  its record is then older than the hold object here, which alone knows the
  renewal. Were the object gone by the time that claim is handed out, a new one
  made from the record would renew the hold again; handed the object, the
  lifecycle puts the stale action back (with the claim's fence) instead.
- ``renewing``: holds whose renewal this process runs, with their safety-net
  action and its due time (kept here only: in the backend the claim's record,
  lease and ``renew`` action stand for it; infinite while the manager has
  planned none); the store keeps their leases alive.
- ``carts``: ids of the holds of the carts made or loaded here, so a release in
  another process shows here when the cart is loaded again.
"""

from __future__ import annotations

import logging
import math
import weakref
from typing import Any

from ..._hold import Hold, HoldState
from ..._lifecycle import ended_elsewhere, orphaned
from .. import Due
from ._codec import apply_record, new_hold, record_renewals

__all__ = ["RENEW", "LocalHolds"]

RENEW = "renew"
#: Real seconds between two sweeps of ``owned``.
PRUNE_EVERY = 5.0


class LocalHolds:
    """The local side of a shared store's holds; see the module docstring.

    ``keep_after_due`` is how long after its due time a hold written here stays
    in ``owned``. ``logger`` is the owning store's: an unreadable record is
    reported under that store's name.
    """

    def __init__(self, keep_after_due: float, logger: logging.Logger) -> None:
        self.objects: weakref.WeakValueDictionary[str, Hold] = weakref.WeakValueDictionary()
        self.plans: weakref.WeakKeyDictionary[Hold, tuple[str, float]] = (
            weakref.WeakKeyDictionary()
        )
        self.owned: dict[str, tuple[Hold, float]] = {}
        self.fenced: dict[str, tuple[Hold, float]] = {}
        self.renewing: dict[str, tuple[Hold, str, float]] = {}
        self.carts: dict[str, set[str]] = {}
        self.keep_after_due = keep_after_due
        self._logger = logger
        self._next_prune = 0.0

    def knows(self, hold: Hold) -> bool:
        """Whether ``hold`` is this store's object for its id (it was written or read here)."""
        return self.objects.get(hold.id) is hold

    def planned(self, hold: Hold, action: str, due: float) -> None:
        """Note the action ``hold`` is about to be saved with."""
        self.objects[hold.id] = hold
        self.plans[hold] = (action, due)

    def written(self, hold: Hold, due: float, *, accepted: bool, first: bool) -> bool:
        """Book the outcome of a save; returns ``accepted``."""
        if not accepted:
            self.owned.pop(hold.id, None)
            self.renewing.pop(hold.id, None)
            self.fenced[hold.id] = (hold, due + self.keep_after_due)
            return False
        self.owned[hold.id] = (hold, due + self.keep_after_due)
        if first:
            self.carts.setdefault(hold.cart_id, set()).add(hold.id)
        return True

    def unknown(self, hold: Hold) -> None:
        """Undo :meth:`planned` for a first save that never reached the backend."""
        if self.objects.get(hold.id) is hold:
            del self.objects[hold.id]
        self.plans.pop(hold, None)

    def ended(self, hold: Hold) -> None:
        """Drop every local note of a hold that reached its terminal state."""
        self.renewing.pop(hold.id, None)
        self.owned.pop(hold.id, None)
        self.fenced.pop(hold.id, None)
        self.plans.pop(hold, None)
        ids = self.carts.get(hold.cart_id)
        if ids is not None:
            ids.discard(hold.id)
            if not ids:
                del self.carts[hold.cart_id]

    def adopt(self, hold_id: str, data: Any, offset: float) -> Hold | None:
        """The one local object for a record: made, or brought up to date in place.

        A hold whose renewal runs here, or whose reserve call is on the wire, is
        not overwritten, nor is one that ended here. Returns None (and logs) for
        an unreadable record.
        """
        hold = self.objects.get(hold_id)
        if hold is not None and hold.done:
            # it ended here: the record is stale (the end is on its way to the
            # backend, or waits for a replay); a new object would be a second copy
            # of the hold, renewed again and ended twice
            return hold
        try:
            if hold is None:
                hold = new_hold(hold_id, data, offset)
                self.objects[hold_id] = hold
            elif not hold._inflight and hold_id not in self.renewing:
                apply_record(hold, data, offset)
        except (ValueError, KeyError, TypeError):
            self._logger.exception("hold %s has an unreadable record; left alone", hold_id)
            return None
        return hold

    def claimed(
        self,
        hold_id: str,
        fence: int,
        data: Any,
        claim: tuple[str, float],
        now: float,
        offset: float,
    ) -> Due | None:
        """The :class:`Due` to hand the manager for one claimed record, or None.

        ``claim`` is the record's (action, due). Three cases:

        - the hold's renewal runs here (our own lease had lapsed, or its
          safety-net time came): keep the new fence; hand out the safety-net
          action if it is due (never before the manager planned one);
        - the record says RENEWING (a restore wrote it while the renewal ran
          in a worker that is gone now) but no renewal runs here: hand it out as
          ``renew``;
        - otherwise hand out the record's action.
        """
        running = self.renewing.get(hold_id)
        if running is not None:
            mine, safety, at = running
            mine._fence = fence
            if at > now:
                return None
            # handed out once; until the manager plans again only the lease counts
            self.renewing[hold_id] = (mine, safety, math.inf)
            return Due(mine, safety, at, fence)
        action, due = claim
        hold = self.adopt(hold_id, data, offset)
        if hold is None:
            return None
        hold._fence = fence
        if hold.done:
            return None  # nothing to do: its end is on its way (this claim never refuses it)
        if hold.state is HoldState.RENEWING:
            orphaned(hold)
            action, due = RENEW, now
        if action == RENEW:
            # its safety net is the one the manager plans next, if any: none while a
            # try past the deadline is on the wire (the reserve is the pending work).
            # Until then only the lease counts: this claim's own due time, already
            # past, would hand the hold out again at the next heartbeat, raising its
            # fence under the reserve for nothing
            self.renewing[hold_id] = (hold, action, math.inf)
        self.plans[hold] = (action, due)
        return Due(hold, action, due, fence)

    def loaded(
        self, hold_id: str, fence: int, data: Any, plan: tuple[str, float], offset: float
    ) -> Hold | None:
        """The local object for a record read by ``cart_holds`` (``plan``: its action, due).

        A live local object is refreshed only when the record is newer: a larger
        fence (another worker claimed the hold since this process last did), or
        more renewals (another worker renewed it under a claim this process had
        already seen, as when a checkout waited for that renewal).
        """
        local = self.objects.get(hold_id)
        if local is not None and not local.done and fence <= local._fence:
            try:
                renewed = record_renewals(data) > local.renewals
            except (ValueError, KeyError, TypeError):
                renewed = False  # adopt would refuse it too; keep the local object
            if not renewed:
                return local
        hold = self.adopt(hold_id, data, offset)
        if hold is not None and hold_id not in self.renewing:
            hold._fence = max(hold._fence, fence)
            self.plans[hold] = plan
        return hold

    def cart_loaded(self, cart_id: str, holds: list[Hold]) -> None:
        """Remember which holds cart ``cart_id`` has now."""
        if holds:
            self.carts[cart_id] = {hold.id for hold in holds}
        else:
            self.carts.pop(cart_id, None)

    def ended_elsewhere(self, hold_id: str, state: str) -> None:
        """A hold another process ended: its local object takes the final state."""
        local = self.objects.get(hold_id)
        if local is not None:
            ended_elsewhere(local, HoldState(state))

    def restorable(self) -> list[tuple[Hold, str, float]]:
        """Every live hold known here with its last plan (for a restore)."""
        holds = {hold_id: hold for hold_id, (hold, _until) in self.owned.items()}
        for hold in list(self.objects.values()):
            holds.setdefault(hold.id, hold)
        found = []
        for hold in holds.values():
            plan = self.plans.get(hold)
            if not hold.done and plan is not None:
                found.append((hold, *plan))
        return found

    def prune(self, now: float) -> None:
        """Stop keeping holds written here (or fenced out) whose due time passed long ago."""
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY
        for kept in (self.owned, self.fenced):
            stale = [hold_id for hold_id, (_hold, until) in kept.items() if until < now]
            for hold_id in stale:
                del kept[hold_id]

    def clear(self) -> None:
        """Forget everything (the store closed)."""
        self.owned.clear()
        self.fenced.clear()
        self.renewing.clear()
        self.carts.clear()

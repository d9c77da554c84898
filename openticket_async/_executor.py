"""Carrying out the lifecycle's actions: what the manager does once a hold's step is decided.

What happens to a hold is decided in one place, the pure lifecycle machine
(``_lifecycle``): every input (an action came due, a reserve answered or
failed, a checkout started or ended, a removal, the close) goes through
:func:`~openticket_async._lifecycle.step`, and this module only *executes* the
actions it returns: save a plan in the store (waking the scheduler if it comes
sooner than it planned to wake), queue a reserve (``_renewal``), emit an event,
count a lingering unit, forget an ended hold. A renewal's outcome comes back
here (:meth:`Executor.finish`) as one more input. The two steps every renewal
takes, its ``renew`` coming due and its answer, go through the lifecycle's
shortcuts (``_shortcuts``) on the default store: the same decisions without the
input and action values (:meth:`Executor.due`, :meth:`Executor.renewed`).

The default :class:`~openticket_async.stores.MemoryStore` is driven without
awaits, so a cart's add and remove cost no coroutine; a store reached by awaits
gets the same actions in :meth:`Executor._apply_shared`. There a plan a store of
this process refused to save is kept in ``unsaved`` for the scheduler to write
again, and the end of a hold outlives a failed write to the store.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from ._cart import Cart
from ._clock import Clock
from ._config import HoldPolicy
from ._events import EventDispatcher, HoldEvent, Renewed
from ._hold import Hold
from ._hold_plan import replan
from ._holdlog import WATCHED, HoldWatch
from ._lifecycle import (
    Action,
    Answered,
    Due,
    Emit,
    End,
    Input,
    Linger,
    Plan,
    Reserve,
    Rules,
    Uncertain,
    disowned,
    plan,
    step,
)
from ._lingering import LingeringUnits
from ._models import Reservation
from ._pending import Pending
from ._planning import RENEW, drop_time, local_deadline
from ._ports import ReservingClient
from ._renewal import Renewals
from ._shortcuts import renew_due, renewed
from ._telemetry import HoldMetrics
from .stores import MemoryStore, ReservationStore

__all__ = ["Executor"]

logger = logging.getLogger("openticket_async.manager")


class Executor:
    """Feeds inputs to the lifecycle and carries out the actions it returns.

    Owns the renewal queue (``renewals``), whose outcomes it applies. ``carts``
    is the manager's carts by id, ``wake`` asks the scheduler to run no later
    than a given time, ``unsaved`` collects the plans a store of this process
    refused (the scheduler writes them again).
    """

    def __init__(
        self,
        client: ReservingClient,
        store: ReservationStore,
        clock: Clock,
        policy: HoldPolicy,
        rules: Rules,
        *,
        memory: MemoryStore | None,
        events: EventDispatcher,
        carts: dict[str, Cart],
        lingering: LingeringUnits,
        unsaved: dict[Hold, tuple[str, float]],
        wake: Callable[[float], None],
        metrics: HoldMetrics | None,
    ) -> None:
        self.client = client
        self.store = store
        self.clock = clock
        self.policy = policy
        self.rules = rules
        self._memory = memory
        self._events = events
        sink = store.event_sink
        self._publish: Callable[[HoldEvent], None] | None = None if sink is None else sink.publish
        self._carts = carts
        self._lingering = lingering
        self._unsaved = unsaved
        self._wake_for = wake
        self._watch = HoldWatch(self._time_left, metrics)
        self.renewals = Renewals(
            client, clock, policy, lingering, self.finish, self.renewed, rules, metrics
        )

    def track(self, hold: Hold) -> Pending:
        """Start keeping a freshly reserved hold.

        On the default store its first plan is saved as :meth:`_apply` saves a
        :class:`Plan`, without making one (``replan``): this runs once per hold a
        cart adds. Other stores take the plan through the actions.
        """
        now = self.clock.now()
        memory = self._memory
        if memory is None:
            return self._apply_shared(hold, plan(hold, now, self.rules), now)
        # a fresh hold always gets a plan (nothing of it is on the wire)
        if replan(hold, now, self.rules):
            action, due = hold._action, hold._due
            assert action is not None  # replan plans whenever it returns True
            memory.put(hold, action, due)
            self._wake_for(due)
        return None

    def step(self, hold: Hold, inp: Input) -> Pending:
        """Feed ``inp`` to the lifecycle and carry out what it returns."""
        now = self.clock.now()
        self.rules.latency_p99 = self.renewals.latency.p99
        return self._apply(hold, step(hold, inp, now, self.rules), now)

    def due(self, hold: Hold, action: str, at: float) -> Pending:
        """:meth:`step` with ``Due(action, at)``, made cheap for a renewal going out.

        The scheduler's call for every due action. On the default store a renewal
        due as planned (``_shortcuts.renew_due``) is queued and its safety net
        saved without the input and action values; anything else takes :meth:`step`.
        """
        memory = self._memory
        if memory is not None and action == RENEW:  # warnings and drops: step at once
            now = self.clock.now()
            rules = self.rules
            rules.latency_p99 = self.renewals.latency.p99
            if renew_due(hold, action, at, now, rules):
                self.renewals.enqueue(hold)
                planned, due = hold._action, hold._due
                assert planned is not None  # renew_due always plans the safety net
                # no wake_for: the caller is the scheduler, which reads the next
                # due time after its pass (a wake would only make it pass again)
                memory.put(hold, planned, due)
                return None
        return self.step(hold, Due(action, at))

    def each(self, holds: Sequence[Hold], inp: Input) -> Pending:
        """:meth:`step` for every hold of ``holds``; raises the first error after all ran."""
        steps = [s for s in (self.step(hold, inp) for hold in holds) if s is not None]
        return _all(steps) if steps else None

    def finish(self, hold: Hold, outcome: Input) -> Pending:
        """Apply a renewal's outcome, then wake a checkout waiting for it.

        Like :meth:`step`, a plain call while the store needs no awaits: this runs
        once per renewal.
        """
        try:
            pending = self.step(hold, outcome)
        except BaseException:
            self._renewal_finished(hold)
            raise
        if pending is None:
            self._renewal_finished(hold)
            return None
        return self._finish_later(hold, pending)

    def renewed(
        self, hold: Hold, reservation: Reservation, sent: float, lateness: float
    ) -> Pending:
        """Apply a renewal's answer: :meth:`finish` with ``Answered``, made cheap.

        This runs once per renewal. On the default store, a hold in the common
        case (``_shortcuts.renewed``) is carried through without the action values
        (the old unit lingers, ``Renewed`` is emitted, the next plan is queued); any
        other goes through :meth:`finish`, as does every hold on other stores.
        """
        memory = self._memory
        if memory is None:
            return self.finish(hold, Answered(reservation, sent, lateness))
        now = self.clock.now()
        rules = self.rules
        rules.latency_p99 = self.renewals.latency.p99
        try:
            old = renewed(hold, reservation, now, rules)
        except BaseException:
            self._renewal_finished(hold)
            raise
        if old is None:
            return self.finish(hold, Answered(reservation, sent, lateness))
        try:
            self._linger(hold, old, now)
            self._announce_renewed(hold, old, reservation, lateness, now)
            action, due = hold._action, hold._due
            assert action is not None  # renewed always plans
            memory.put(hold, action, due)
            self._wake_for(due)
        finally:
            self._renewal_finished(hold)
        return None

    def _announce_renewed(
        self, hold: Hold, old: Reservation, new: Reservation, lateness: float, now: float
    ) -> None:
        # _announce for Renewed, with no Emit value unless the debug log wants one
        if logger.isEnabledFor(logging.DEBUG):
            self._watch(hold, Emit(Renewed, lateness, {"old": old, "new": new}), now)
        if self._publish is None and not self._events.wants(Renewed):
            return
        left = new.deadline - self.policy.safety_margin - now  # _time_left, inlined
        event = Renewed(hold, left, lateness, old=old, new=new)
        self._events.emit(event)
        if self._publish is not None:
            self._publish(event)

    async def _finish_later(self, hold: Hold, pending: Awaitable[None]) -> None:
        try:
            await pending
        finally:
            self._renewal_finished(hold)

    def _renewal_finished(self, hold: Hold) -> None:
        cart = self._carts.get(hold.cart_id)
        if cart is not None:
            cart.renewal_finished()

    def _apply(self, hold: Hold, actions: list[Action], now: float) -> Pending:
        memory = self._memory
        if memory is None:
            return self._apply_shared(hold, actions, now)
        # action classes are final, so ``type(...) is`` tells them apart for less
        # than isinstance; the common ones first (a plan per add, an end per remove)
        for action in actions:
            if type(action) is Plan:
                memory.put(hold, action.action, action.at)
                self._wake_for(action.at)
            elif type(action) is End:
                memory.remove(hold)  # also takes it out of its cart (they share the dict)
            elif type(action) is Linger:
                self._linger(hold, action.reservation, now)
            elif type(action) is Emit:
                self._announce(hold, action, now)
            elif type(action) is Reserve:
                self.renewals.enqueue(hold, action.first)
            elif type(action) is Uncertain:
                self.renewals.uncertain(hold.ticket_guid, action.sent)
        return None

    async def _apply_shared(self, hold: Hold, actions: list[Action], now: float) -> None:
        store = self.store
        for action in actions:
            if isinstance(action, Plan):
                due = action.at
                if store.shared:
                    due += self.clock.wall().timestamp() - self.clock.now()
                try:
                    saved = await store.save(hold, action.action, due, hold._fence)
                except Exception:
                    # a shared store's claim comes due again when its lease lapses;
                    # a store of this process hands the hold out only if it has a plan
                    if not store.shared:
                        self._unsaved[hold] = (action.action, action.at)
                        self._wake_for(self.clock.now())
                    raise
                self._unsaved.pop(hold, None)
                if not saved:
                    logger.info("hold %s belongs to another worker now", hold.id)
                    return
                self._wake_for(action.at)
            elif isinstance(action, End):
                self._unsaved.pop(hold, None)
                try:
                    # never refused for a claim of the store's own that crossed the
                    # end on the wire: that one hands out nothing for an ended hold
                    forgotten = await store.forget(hold, hold._fence)
                except Exception:
                    # the hold ended here: its event and its lingering unit must not
                    # be lost with the store's write (a stale plan the store still
                    # hands out meets a terminal hold, which ignores it)
                    logger.exception("recording the end of hold %s in the store failed", hold.id)
                    forgotten = True
                if not forgotten:
                    # another worker claimed it since: that one ends it
                    disowned(hold, action.previous)
                    return
                cart = self._carts.get(hold.cart_id)
                if cart is not None:
                    cart._ended(hold)
            elif isinstance(action, Emit):
                self._announce(hold, action, now)
            elif isinstance(action, Reserve):
                self.renewals.enqueue(hold, action.first)
            elif isinstance(action, Linger):
                self._linger(hold, action.reservation, now)
            elif isinstance(action, Uncertain):
                self.renewals.uncertain(hold.ticket_guid, action.sent)

    def _announce(self, hold: Hold, emit: Emit, now: float) -> None:
        kind = emit.kind
        if kind in WATCHED:  # lifecycle log lines and the lost-holds metric
            self._watch(hold, emit, now)
        if self._publish is None and not self._events.wants(kind):
            return  # nobody listens: the event is not even built
        event = kind(hold, self._time_left(hold, now), emit.lateness, **emit.fields)
        self._events.emit(event)
        if self._publish is not None:
            self._publish(event)  # a shared store forwards events to other processes

    def _linger(self, hold: Hold, reservation: Reservation, now: float) -> None:
        # the server drops a unit one TTL after it made it, whatever expiry it stated:
        # an expiry stated early (by a server clock behind) must not free it here sooner
        stated = (reservation.expires_at - reservation.reserved_at).total_seconds()
        early = self.client.reservation_ttl - stated
        until = drop_time(reservation, self.policy) + (early if early > 0.0 else 0.0)
        self._lingering.add(hold.ticket_guid, reservation.guid, until, now)

    def _time_left(self, hold: Hold, now: float) -> float:
        if hold.reservation is None:
            return 0.0
        return local_deadline(hold.reservation, self.policy) - now


async def _all(steps: list[Awaitable[None]]) -> None:
    # every hold's step is carried out, even after one failed: its state has changed
    # already, and skipping its actions would lose its events; the first error is raised
    failed: Exception | None = None
    for step_ in steps:
        try:
            await step_
        except Exception as error:  # noqa: BLE001 (raised below, after the other holds)
            failed = failed or error
    if failed is not None:
        raise failed

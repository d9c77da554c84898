"""ReservationManager: keeps every cart's holds reserved across the 8-minute drop.

Theory of operation
-------------------
OpenTicket drops a reservation 8 minutes after it is made and offers no way to
extend one, so keeping a hold alive means reserving the same ticket again
before the drop and swapping the hold to the new reservation.

What happens to a hold is decided in one place, the pure lifecycle machine
(``_lifecycle``): every input (an action came due, a reserve answered or
failed, a checkout started or ended, a removal, the close) goes through
:func:`~openticket_async._lifecycle.step`, and this module only *executes* the
actions it returns: save a plan in the store, queue a reserve (``_renewal``),
emit an event, count a lingering unit, forget an ended hold. The invariants
I1-I6 are the lifecycle's, stated at the top of that module.

A checkout claims its cart in the store first (``_checkout``); the scheduler
extends the claims this manager holds until their checkouts release them.

One scheduler task claims due actions from the store, in due order, and feeds
them to the lifecycle; renewals run in at most ``renewal_concurrency`` worker
tasks that exist only while there is renewal work. Waiting goes through the
injected ``Clock`` only. A failure while handling one hold (a store error, a
bug) is logged with its traceback and never stops the scheduler, the other
holds or the application's code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import TypeVar

import anyio
from anyio.abc import TaskGroup

from ._cart import Cart
from ._checkout import CheckoutClaims
from ._clock import Clock
from ._config import HoldPolicy
from ._events import EventDispatcher, EventStream, HoldEvent
from ._exceptions import UsageError
from ._hold import Hold
from ._holdlog import WATCHED, HoldWatch
from ._lifecycle import (
    Action,
    CheckoutFailed,
    CheckoutStarted,
    CheckoutSucceeded,
    Close,
    Due,
    Emit,
    End,
    Input,
    Linger,
    Plan,
    Remove,
    Reserve,
    Rules,
    Uncertain,
    disowned,
    plan,
    step,
)
from ._lingering import Lingering, LingeringUnits
from ._models import Order, Reservation
from ._pending import Pending, settle
from ._planning import LatencyTracker, drop_time, local_deadline
from ._ports import ReservingClient
from ._renewal import Renewals
from ._stats import ManagerStats, StoreWatch, snapshot
from ._telemetry import HoldMetrics, Telemetry, resolve
from .stores import MemoryStore, ReservationStore

__all__ = ["ReservationManager", "ReservingClient"]

logger = logging.getLogger("openticket_async.manager")

E = TypeVar("E", bound=HoldEvent)

#: How many due actions one scheduler pass takes before it yields to other tasks.
BATCH = 512
#: How often a manager on a shared store looks for work other processes made due.
SHARED_POLL = 0.5


class ReservationManager:
    """Keeps holds reserved across OpenTicket's 8-minute drop.

    Use as an async context manager; it owns one task group and one scheduler
    task, and closing it cancels them deterministically. With the default
    :class:`~openticket_async.stores.MemoryStore`, closing releases every live
    hold (each ends ``Released``, and the callbacks of those events run, within
    ``HoldPolicy.close_timeout``); with a shared store, holds stay in the store
    for another worker to continue.

    ``telemetry`` says where OpenTelemetry spans and metrics go (default: the
    providers the application configured; none, nothing: see
    docs/observability.md).

    An exception raised inside ``async with`` reaches the caller as itself. When
    the manager's own tasks failed too (which the manager prevents for every
    error it knows), all of them come together in an ``ExceptionGroup``.
    """

    def __init__(
        self,
        client: ReservingClient,
        *,
        policy: HoldPolicy | None = None,
        store: ReservationStore | None = None,
        clock: Clock | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.client = client
        self.policy = policy or HoldPolicy()
        self.store: ReservationStore = store if store is not None else MemoryStore()
        # the default store is driven without awaits (see _apply and _scheduler)
        self._memory = self.store if type(self.store) is MemoryStore else None
        self.clock: Clock = clock or client.clock
        self._events = EventDispatcher(logging.getLogger("openticket_async.events"))
        sink = self.store.event_sink
        self._publish: Callable[[HoldEvent], None] | None = None if sink is None else sink.publish
        self._carts: dict[str, Cart] = {}
        self._lingering = LingeringUnits()
        providers = resolve(telemetry)  # None: no spans, no metrics, and no cost
        self._metrics = None if providers is None else HoldMetrics(providers, self)
        self._watch = HoldWatch(self._time_left, self._metrics)
        self._store_watch = StoreWatch(self.store, self._metrics)
        self.rules = Rules(
            self.policy, client.retry, self._touched_at, resolution=self.clock.resolution
        )
        self._renewals = Renewals(
            client, self.clock, self.policy, self._lingering, self._finish, self.rules,
            self._metrics,
        )
        self._checkouts = CheckoutClaims(self.store, self.clock, self.policy, self._wake_for)
        self._tg: TaskGroup | None = None
        self._sleep_scope: anyio.CancelScope | None = None
        self._sleeping_until: float | None = None
        self._replan = False
        # plans a store of this process refused to save: written again by the
        # scheduler, or nothing would ever hand their holds out again
        self._unsaved: dict[Hold, tuple[str, float]] = {}
        self._closed = False
        self._id_prefix = os.urandom(6).hex()
        self._next_id = 0

    @property
    def latency(self) -> LatencyTracker:
        """The observed reserve latencies (their p99 sets the renewal lead)."""
        return self._renewals.latency

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> ReservationManager:
        if self._tg is not None or self._closed:
            raise UsageError("a ReservationManager can be entered once")
        self.store.bind(self.clock, self.policy)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._events.bind(lambda fn: tg.start_soon(fn))
        self._renewals.bind(lambda fn: tg.start_soon(fn))
        await tg.start(self._scheduler)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        await self.aclose()
        tg, self._tg = self._tg, None
        if tg is None:
            return None
        tg.cancel_scope.cancel()
        try:
            return await tg.__aexit__(exc_type, exc, tb)
        except BaseExceptionGroup as group:
            # the application's own exception, alone: give it back as itself
            if exc is not None and len(group.exceptions) == 1 and group.exceptions[0] is exc:
                raise exc from exc.__cause__
            raise

    async def aclose(self) -> None:
        """Stop renewing. Without a shared store, release every live hold first."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if not self.store.shared:
                for cart in list(self._carts.values()):
                    await cart._shut(Close())
            await self._events.drain(self.policy.close_timeout)
            self._events.close()
            await self.store.aclose()
        self._events.bind(None)
        self._renewals.bind(None)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # -- public API --------------------------------------------------------------

    def cart(self, shop_guid: str, *, cart_id: str | None = None) -> Cart:
        """The cart ``cart_id`` (a new cart when None) in shop ``shop_guid``.

        Fetching a cart counts as using it (``idle_timeout``). Raises
        InvalidArgument for a malformed shop GUID and UsageError once the manager
        is closed.
        """
        self._check_open()
        if cart_id is not None:
            known = self._carts.get(cart_id)
            if known is not None:
                known.touch()
                return known
        cart_id = cart_id or os.urandom(12).hex()
        shared = self._memory.cart_index(cart_id) if self._memory is not None else None
        cart = Cart(self, shop_guid, cart_id=cart_id, holds=shared)
        self._carts[cart.id] = cart
        return cart

    def on(
        self, event_type: type[E], callback: Callable[[E], Awaitable[None] | None]
    ) -> Callable[[], None]:
        """Call ``callback`` (sync or async) with every event of ``event_type``.

        Callbacks run isolated: an exception is logged and never reaches the
        scheduler. Returns a function that unsubscribes.
        """
        return self._events.on(event_type, callback)

    def events(self, maxlen: int = 1024) -> EventStream:
        """A bounded stream of every event; a slow reader loses the oldest ones."""
        return self._events.stream(maxlen)

    def lingering(self, ticket_guid: str | None = None) -> list[Lingering]:
        """Units the server may still hold for us that no live hold counts on.

        They drop by themselves; never count them as free stock before ``until``.
        """
        return self._lingering.live(self.clock.now(), ticket_guid)

    def stats(self) -> ManagerStats:
        """A cheap snapshot for health checks: holds by state, carts, what is due.

        Counts the holds of the carts open in this manager (with a shared store,
        the carts this process made or loaded). Raises nothing.
        """
        now = self.clock.now()
        due = self._memory.peek_due() if self._memory is not None else self._sleeping_until
        return snapshot(
            (hold for cart in self._carts.values() for hold in cart._holds.values()),
            len(self._carts),
            None if due is None else max(due - now, 0.0),
            self._renewals.in_flight,
            len(self._lingering.live(now)),
            self._renewals.lateness,
            self._store_watch.health,
        )

    # -- used by Cart (its CartHost protocol) --------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the ReservationManager is closed")
        if self._tg is None:
            raise UsageError("enter the ReservationManager (async with) before using it")

    def _new_hold_id(self) -> str:
        self._next_id += 1
        return f"{self._id_prefix}-{self._next_id}"

    def _reserve(self, shop_guid: str, ticket_guid: str, sent: float) -> Awaitable[Reservation]:
        # the renewals' coroutine itself, not one more coroutine around it (cart.add's path)
        return self._renewals.reserve(shop_guid, ticket_guid, None, sent)

    def _track(self, hold: Hold) -> Pending:
        """Start keeping a freshly reserved hold."""
        now = self.clock.now()
        return self._apply(hold, plan(hold, now, self.rules), now)

    def _release(self, hold: Hold) -> Pending:
        return self._step(hold, _REMOVE)

    def _checkout_started(self, holds: Sequence[Hold]) -> Pending:
        return self._each(holds, CheckoutStarted())

    def _checkout_ended(self, holds: Sequence[Hold], order: Order | None) -> Pending:
        return self._each(holds, CheckoutFailed() if order is None else CheckoutSucceeded(order))

    def _forget_cart(self, cart: Cart) -> None:
        self._carts.pop(cart.id, None)
        if self._memory is not None:
            self._memory.drop_cart(cart.id)

    def _time_left(self, hold: Hold, now: float) -> float:
        if hold.reservation is None:
            return 0.0
        return local_deadline(hold.reservation, self.policy) - now

    def _touched_at(self, cart_id: str) -> float | None:
        cart = self._carts.get(cart_id)
        return None if cart is None else cart.touched_at

    # -- executing the lifecycle's actions --------------------------------------------

    def _step(self, hold: Hold, inp: Input) -> Pending:
        """Feed ``inp`` to the lifecycle and carry out what it returns."""
        now = self.clock.now()
        self.rules.latency_p99 = self._renewals.latency.p99
        return self._apply(hold, step(hold, inp, now, self.rules), now)

    def _each(self, holds: Sequence[Hold], inp: Input) -> Pending:
        steps = [s for s in (self._step(hold, inp) for hold in holds) if s is not None]
        return _all(steps) if steps else None

    async def _finish(self, hold: Hold, outcome: Input) -> None:
        """Apply a renewal's outcome, then wake a checkout waiting for it."""
        try:
            await settle(self._step(hold, outcome))
        finally:
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
                self._renewals.enqueue(hold, action.first)
            elif type(action) is Uncertain:
                self._renewals.uncertain(hold.ticket_guid, action.sent)
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
                self._renewals.enqueue(hold, action.first)
            elif isinstance(action, Linger):
                self._linger(hold, action.reservation, now)
            elif isinstance(action, Uncertain):
                self._renewals.uncertain(hold.ticket_guid, action.sent)

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

    def _wake_for(self, due: float) -> None:
        """Make the scheduler look again if ``due`` comes before it planned to wake."""
        scope = self._sleep_scope
        if scope is None:
            self._replan = True  # the scheduler is awake: make it look again before sleeping
        elif self._sleeping_until is None or due < self._sleeping_until:
            scope.cancel()  # wake the scheduler: this is due before it planned to wake

    # -- the scheduler ---------------------------------------------------------------

    async def _scheduler(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        task_status.started()
        clock, store, memory = self.clock, self.store, self._memory
        while True:
            self._replan = False
            now = clock.now()
            if memory is not None:  # the default store: no Due values, no awaits
                for due_at, hold, action in memory.pop_due(now + clock.resolution, BATCH):
                    self._fire(hold, action, due_at, 0)
                target = memory.peek_due()
            else:
                target = await self._claim_and_fire(now)
            if self._checkouts:  # the heartbeats of this manager's checkout claims
                beat = await self._checkouts.keep(now)
                if beat is not None:
                    target = beat if target is None else min(target, beat)
            if store.shared:
                target = now + SHARED_POLL if target is None else min(target, now + SHARED_POLL)
            if self._replan or (target is not None and target <= clock.now() + clock.resolution):
                await anyio.lowlevel.checkpoint()  # more is due already: go round again
                continue
            with anyio.CancelScope() as scope:
                self._sleep_scope, self._sleeping_until = scope, target
                if target is None:
                    await anyio.Event().wait()  # until _wake_for cancels the scope
                else:
                    await clock.sleep_until(target)
            self._sleep_scope = self._sleeping_until = None

    async def _claim_and_fire(self, now: float) -> float | None:
        """One pass over a store reached by awaits; returns its next due time.

        The returned time is on the manager's clock, whatever the store's scale.
        """
        store, clock = self.store, self.clock
        offset = clock.wall().timestamp() - now if store.shared else 0.0
        if self._unsaved:
            await self._save_again()
        failed = False
        try:
            batch = await store.claim_due(now + offset + clock.resolution, BATCH)
        except Exception:  # a store outage must not kill the scheduler
            logger.exception("claiming due work from the store failed; retrying")
            batch, failed = [], True
        self._store_watch.check(now)
        if self._metrics is not None:
            self._metrics.store_claims(len(batch))
        for due in batch:
            await settle(self._fire(due.hold, due.action, due.due - offset, due.fence))
        try:
            nxt = await store.next_due()
        except Exception:
            logger.exception("reading the store's next due time failed; retrying")
            nxt, failed = None, True
        target = None if nxt is None else nxt - offset
        if failed or self._unsaved:
            # retry a failed store soon, neither never (no next due time) nor in a
            # busy loop (the work it could not hand out is due already)
            retry = now + SHARED_POLL
            target = retry if failed or target is None else min(target, retry)
        return target

    async def _save_again(self) -> None:
        """Write again the plans a store of this process refused (see ``_apply_shared``)."""
        for hold, (action, due) in list(self._unsaved.items()):
            if hold.done or self._unsaved.get(hold) != (action, due):
                self._unsaved.pop(hold, None)
                continue
            try:
                await self.store.save(hold, action, due, hold._fence)
            except Exception:
                logger.exception("saving the plan of hold %s failed again; retrying", hold.id)
                return
            if self._unsaved.get(hold) == (action, due):
                del self._unsaved[hold]

    def _fire(self, hold: Hold, action: str, due: float, fence: int) -> Pending:
        """Feed one due action of ``hold`` to the lifecycle; contain what goes wrong."""
        hold._fence = fence
        try:
            step_ = self._step(hold, Due(action, due))
        except Exception:
            logger.exception("handling %s of hold %s failed", action, hold.id)
            return None
        return None if step_ is None else _contained(step_, hold, action)


_REMOVE = Remove()


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


async def _contained(step_: Awaitable[None], hold: Hold, action: str) -> None:
    try:
        await step_
    except Exception:
        logger.exception("handling %s of hold %s failed", action, hold.id)

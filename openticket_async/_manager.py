"""ReservationManager: keeps every cart's holds reserved across the 8-minute drop.

Theory of operation
-------------------
OpenTicket drops a reservation 8 minutes after it is made and offers no way to
extend one, so keeping a hold alive means reserving the same ticket again
before the drop and swapping the hold to the new reservation.

What happens to a hold is decided in one place, the pure lifecycle machine
(``_lifecycle``); the invariants I1-I6 are its own, stated at the top of that
module. The manager is the façade over the rooms that carry the decisions out:

- ``_executor`` feeds every input to :func:`~openticket_async._lifecycle.step`
  and executes the actions it returns: save a plan in the store, queue a
  reserve, emit an event, count a lingering unit, forget an ended hold;
- ``_renewal`` sends the reserves, in at most ``renewal_concurrency`` worker
  tasks that exist only while there is renewal work;
- ``_scheduler`` is the one scheduler task: it claims due actions from the
  store, in due order, feeds them to the lifecycle, and sleeps in between;
- ``_checkout``: a checkout claims its cart in the store first; the scheduler
  extends the claims this manager holds until their checkouts release them.

This module owns what the application sees: construction (which wires those
rooms together), the one task group, the carts by id, the subscriptions, the
snapshot and the close. Waiting goes through the injected ``Clock`` only. A
failure while handling one hold (a store error, a bug) is logged with its
traceback and never stops the scheduler, the other holds or the application's
code.
"""

from __future__ import annotations

import base64
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
from ._executor import Executor
from ._hold import Hold
from ._lifecycle import CheckoutFailed, CheckoutStarted, CheckoutSucceeded, Close, Input, Rules
from ._lingering import Lingering, LingeringUnits
from ._models import Order, Reservation
from ._pending import Pending
from ._planning import LatencyTracker
from ._ports import ReservingClient
from ._scheduler import Scheduler, Wakeup
from ._stats import ManagerStats, StoreWatch, snapshot
from ._telemetry import HoldMetrics, Telemetry, resolve
from .stores import MemoryStore, ReservationStore

__all__ = ["ReservationManager", "ReservingClient"]

E = TypeVar("E", bound=HoldEvent)


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
        # the default store is driven without awaits (by the executor and the scheduler)
        self._memory = self.store if type(self.store) is MemoryStore else None
        self.clock: Clock = clock or client.clock
        self._events = EventDispatcher(logging.getLogger("openticket_async.events"))
        self._carts: dict[str, Cart] = {}
        self._lingering = LingeringUnits()
        providers = resolve(telemetry)  # None: no spans, no metrics, and no cost
        self._metrics = None if providers is None else HoldMetrics(providers, self)
        self._store_watch = StoreWatch(self.store, self._metrics)
        self.rules = Rules(
            self.policy, client.retry, self._touched_at, resolution=self.clock.resolution
        )
        # plans a store of this process refused to save: written again by the
        # scheduler, or nothing would ever hand their holds out again
        self._unsaved: dict[Hold, tuple[str, float]] = {}
        self._wakeup = Wakeup(self.clock)
        self._executor = Executor(
            client, self.store, self.clock, self.policy, self.rules,
            memory=self._memory, events=self._events, carts=self._carts,
            lingering=self._lingering, unsaved=self._unsaved, wake=self._wakeup.wake_for,
            metrics=self._metrics,
        )
        self._renewals = self._executor.renewals
        self._checkouts = CheckoutClaims(self.store, self.clock, self.policy, self._wakeup.wake_for)
        self._scheduling = Scheduler(
            self.store, self.clock, memory=self._memory, step=self._executor.step,
            due=self._executor.due, unsaved=self._unsaved, checkouts=self._checkouts,
            wakeup=self._wakeup, store_watch=self._store_watch, metrics=self._metrics,
        )
        self._tg: TaskGroup | None = None
        self._closed = False
        # 48 random bits keep the ids of managers sharing a store apart; in
        # base64 they take 8 characters, so with a hex counter an id stays within
        # 15 (one 64-byte string, not 80) up to 16.7 million holds per manager
        self._id_prefix = base64.urlsafe_b64encode(os.urandom(6)).decode()
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
        try:
            await self.aclose()
        except BaseException:
            # a store whose close failed: the manager's tasks still end, and the
            # task group is still left, or it would stay open around the caller
            await self._leave(exc_type, exc, tb)
            raise
        return await self._leave(exc_type, exc, tb)

    async def _leave(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Cancel and leave the task group entered by ``__aenter__``."""
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
        """Stop renewing. Without a shared store, release every live hold first.

        Raises what the store's ``aclose`` raises, once renewing has stopped.
        """
        if self._closed:
            return
        self._closed = True
        try:
            with anyio.CancelScope(shield=True):
                if not self.store.shared:
                    for cart in list(self._carts.values()):
                        await cart._shut(Close())
                await self._events.drain(self.policy.close_timeout)
                self._events.close()
                await self.store.aclose()
        finally:  # renewing stops even when the store's close raised
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
        due = self._memory.peek_due() if self._memory is not None else self._wakeup.sleeping_until
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
        return f"{self._id_prefix}-{self._next_id:x}"

    def _reserve(self, shop_guid: str, ticket_guid: str, sent: float) -> Awaitable[Reservation]:
        # the renewals' coroutine itself, not one more coroutine around it (cart.add's path)
        return self._renewals.reserve(shop_guid, ticket_guid, None, sent)

    def _track(self, hold: Hold) -> Pending:
        """Start keeping a freshly reserved hold."""
        return self._executor.track(hold)

    def _step(self, hold: Hold, inp: Input) -> Pending:
        """Feed ``inp`` to the lifecycle and carry out what it returns."""
        return self._executor.step(hold, inp)

    def _checkout_started(self, holds: Sequence[Hold]) -> Pending:
        return self._executor.each(holds, CheckoutStarted())

    def _checkout_ended(self, holds: Sequence[Hold], order: Order | None) -> Pending:
        return self._executor.each(
            holds, CheckoutFailed() if order is None else CheckoutSucceeded(order)
        )

    def _forget_cart(self, cart: Cart) -> None:
        self._carts.pop(cart.id, None)
        if self._memory is not None:
            self._memory.drop_cart(cart.id)

    def _touched_at(self, cart_id: str) -> float | None:
        cart = self._carts.get(cart_id)
        return None if cart is None else cart.touched_at

    # -- the scheduler task ------------------------------------------------------------

    async def _scheduler(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        # the scheduler's task runs this method so that it carries the manager's
        # name (``ReservationManager._scheduler``) wherever tasks are listed
        await self._scheduling.run(task_status=task_status)

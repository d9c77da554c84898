"""ReservationManager: keeps every cart's holds reserved across the 8-minute drop.

Theory of operation
-------------------
OpenTicket drops a reservation 8 minutes after it is made and offers no way to
extend one, so keeping a hold alive means reserving the same ticket again
before the drop and swapping the hold to the new reservation. Each live hold has
exactly one pending *action* in the store's due queue:

- ``warn``:  fire ``Expiring`` (``warn_before`` the local deadline);
- ``renew``: reserve again (``renew_before`` the deadline, earlier by jitter,
  or a backoff after a failure, or once just after the drop when at risk);
- ``drop``:  the local deadline arrived without a renewal (expire, or at risk).

One scheduler task claims due actions from the store, in due order, and acts;
renewals run in at most ``renewal_concurrency`` worker tasks that exist only
while there is renewal work. Deciding *when* is pure (``_planning``); waiting
goes through the injected ``Clock`` only.

Invariants
----------
1. A live hold has one pending action, or a renewal on the wire, never neither.
2. Every hold ends in exactly one terminal event (Lost, Expired, Released,
   CheckedOut), emitted with the state change, in order with its other events.
3. A renewal is planned no later than ``local_deadline - lead``; jitter only
   moves it earlier.
4. Any wait that would outlast the deadline makes the hold AT_RISK at once,
   and it gets exactly one more try, after the drop, before it is Lost.
5. A reserve that may have reached the server but gave no answer counts as an
   uncertain unit until its TTL has passed (``manager.lingering()``).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Protocol, TypeVar

import anyio
from anyio.abc import TaskGroup

from ._cart import Cart
from ._clock import Clock, SystemClock
from ._config import HoldPolicy, RetryPolicy
from ._events import (
    CheckedOut,
    EventDispatcher,
    EventStream,
    Expired,
    Expiring,
    HoldEvent,
    Lost,
    Released,
    RenewalFailed,
    Renewed,
)
from ._exceptions import (
    APIError,
    DecodeError,
    OpenTicketError,
    RateLimited,
    ServerError,
    TicketUnavailable,
    TransportError,
    UsageError,
)
from ._hold import TERMINAL_STATES, Hold, HoldState
from ._lingering import Lingering, LingeringUnits
from ._models import Order, Receiver, Reservation
from ._pending import Pending, settle
from ._planning import (
    DROP,
    RENEW,
    WARN,
    LatencyTracker,
    drop_time,
    local_deadline,
    next_action,
    retry_fits,
)
from .stores import MemoryStore, ReservationStore

__all__ = ["ReservationManager", "ReservingClient"]

logger = logging.getLogger("openticket_async.manager")

E = TypeVar("E", bound=HoldEvent)

# Enum members read through module globals: the class attribute lookup of an
# Enum member is slow enough to show in the per-hold paths.
_ACTIVE, _RENEWING, _ORDERED = HoldState.ACTIVE, HoldState.RENEWING, HoldState.ORDERED
#: How many due actions one scheduler pass takes before it yields to other tasks.
BATCH = 512
#: How often a manager on a shared store looks for work other processes made due.
SHARED_POLL = 0.5
# Renewals plan their own retries against the hold's deadline: one try per call.
_ONE_TRY = RetryPolicy(attempts=1)


class ReservingClient(Protocol):
    """What the manager needs from a client (``OpenTicketClient`` satisfies it)."""

    @property
    def clock(self) -> Clock: ...

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


class ReservationManager:
    """Keeps holds reserved across OpenTicket's 8-minute drop.

    Use as an async context manager; it owns one task group and one scheduler
    task, and closing it cancels them deterministically. With the default
    :class:`~openticket_async.stores.MemoryStore`, closing releases every live
    hold (each ends ``Released``); with a shared store, holds stay in the store
    for another worker to continue.
    """

    def __init__(
        self,
        client: ReservingClient,
        *,
        policy: HoldPolicy | None = None,
        store: ReservationStore | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.client = client
        self.policy = policy or HoldPolicy()
        self.store: ReservationStore = store if store is not None else MemoryStore()
        # the default store is driven without awaits (see _save and _scheduler)
        self._memory = self.store if type(self.store) is MemoryStore else None
        self.clock: Clock = clock or getattr(client, "clock", None) or SystemClock()
        self.latency = LatencyTracker()
        self._events = EventDispatcher(logging.getLogger("openticket_async.events"))
        sink = self.store.event_sink
        self._publish: Callable[[HoldEvent], None] | None = None if sink is None else sink.publish
        self._carts: dict[str, Cart] = {}
        self._renew_queue: deque[tuple[Hold, float]] = deque()
        self._workers = 0
        self._lingering = LingeringUnits()
        self._tg: TaskGroup | None = None
        self._sleep_scope: anyio.CancelScope | None = None
        self._sleeping_until: float | None = None
        self._replan = False
        self._closed = False
        self._id_prefix = os.urandom(6).hex()
        self._next_id = 0

    # -- lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> ReservationManager:
        if self._tg is not None or self._closed:
            raise UsageError("a ReservationManager can be entered once")
        self.store.bind(self.clock, self.policy)
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._events.bind(lambda fn: tg.start_soon(fn))
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
        return await tg.__aexit__(exc_type, exc, tb)

    async def aclose(self) -> None:
        """Stop renewing. Without a shared store, release every live hold first."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            if not self.store.shared:
                for cart in list(self._carts.values()):
                    await cart.close()
            self._events.close()
            await self.store.aclose()
        self._events.bind(None)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    # -- public API --------------------------------------------------------------

    def cart(self, shop_guid: str, *, cart_id: str | None = None) -> Cart:
        """The cart ``cart_id`` (a new cart when None) in shop ``shop_guid``.

        Raises InvalidArgument for a malformed shop GUID and UsageError once the
        manager is closed.
        """
        self._check_open()
        if cart_id is not None and cart_id in self._carts:
            return self._carts[cart_id]
        cart_id = cart_id or os.urandom(12).hex()
        shared = self._memory.cart_index(cart_id) if self._memory is not None else None
        cart = Cart(self, shop_guid, cart_id=cart_id, holds=shared)
        self._carts[cart.id] = cart
        return cart

    def on(
        self, event_type: type[E], callback: Callable[[E], None] | Callable[[E], Awaitable[None]]
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

    # -- used by Cart ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("the ReservationManager is closed")
        if self._tg is None:
            raise UsageError("enter the ReservationManager (async with) before using it")

    def _new_hold_id(self) -> str:
        self._next_id += 1
        return f"{self._id_prefix}-{self._next_id}"

    async def _reserve(
        self, shop_guid: str, ticket_guid: str, retry: RetryPolicy | None, sent: float
    ) -> Reservation:
        """Reserve once (sent at ``sent``), counting a unit that may exist but gave no answer."""
        try:
            reservation = await self.client.reserve_ticket(shop_guid, ticket_guid, retry=retry)
        except TransportError as exc:
            if exc.may_have_reached_server:
                self._note_uncertain(ticket_guid, sent)
            raise
        except anyio.get_cancelled_exc_class():
            self._note_uncertain(ticket_guid, sent)
            raise
        self.latency.record(self.clock.now() - sent)
        return reservation

    def _note_uncertain(self, ticket_guid: str, sent: float) -> None:
        until = sent + self.client.reservation_ttl + self.policy.safety_margin
        self._lingering.add(ticket_guid, None, until, self.clock.now())

    def _linger(self, hold: Hold, reservation: Reservation | None, now: float) -> None:
        if reservation is not None and hold.state is not _ORDERED:
            until = drop_time(reservation, self.policy)
            self._lingering.add(hold.ticket_guid, reservation.guid, until, now)

    def _track(self, hold: Hold) -> Pending:
        """Start keeping a freshly reserved hold."""
        return self._plan(hold, self.clock.now())

    def _end(
        self,
        hold: Hold,
        state: HoldState,
        kind: type[HoldEvent],
        lateness: float = 0.0,
        time_left: float | None = None,
        fields: Mapping[str, object] | None = None,
    ) -> Pending:
        """Move ``hold`` to a terminal state, forget it and emit its terminal event.

        The event is a ``kind`` built with ``fields``; ``time_left`` None means
        "what the hold has left now".
        """
        memory = self._memory
        if memory is None:
            return self._end_shared(hold, state, kind, lateness, time_left, fields)
        hold.state = state
        memory.remove(hold)  # also takes it out of its cart (they share the dict)
        self._ended(hold, kind, lateness, time_left, fields)
        return None

    async def _end_shared(
        self,
        hold: Hold,
        state: HoldState,
        kind: type[HoldEvent],
        lateness: float,
        time_left: float | None,
        fields: Mapping[str, object] | None,
    ) -> None:
        previous, hold.state = hold.state, state
        if not await self.store.forget(hold, hold._fence):
            hold.state = previous  # another worker claimed it since: that one ends it
            return
        cart = self._carts.get(hold.cart_id)
        if cart is not None:
            cart._ended(hold)
        self._ended(hold, kind, lateness, time_left, fields)

    def _ended(
        self,
        hold: Hold,
        kind: type[HoldEvent],
        lateness: float,
        time_left: float | None,
        fields: Mapping[str, object] | None,
    ) -> None:
        now = self.clock.now()
        if hold.state is not _ORDERED:
            self._linger(hold, hold.reservation, now)
        if self._heard(kind):
            if time_left is None:
                time_left = self._time_left(hold, now)
            event = kind(hold, time_left, lateness, **(fields or {}))
            self._emit(event)

    def _heard(self, kind: type[HoldEvent]) -> bool:
        """Whether an event of ``kind`` reaches anyone; else it is not even built."""
        return self._publish is not None or self._events.wants(kind)

    def _emit(self, event: HoldEvent) -> None:
        self._events.emit(event)
        if self._publish is not None:
            self._publish(event)  # a shared store forwards events to other processes

    def _time_left(self, hold: Hold, now: float) -> float:
        if hold.reservation is None:
            return 0.0
        return local_deadline(hold.reservation, self.policy) - now

    # -- planning ------------------------------------------------------------------

    def _may_renew(self, hold: Hold, now: float) -> str | None:
        """None if the hold may be renewed now, else the reason it may not."""
        policy = self.policy
        if not policy.auto_renew:
            return "not_renewed"
        if policy.max_hold is not None and now - hold.created_at >= policy.max_hold:
            return "max_hold"
        cart = self._carts.get(hold.cart_id)
        if (
            policy.idle_timeout is not None
            and cart is not None
            and now - cart.touched_at >= policy.idle_timeout
        ):
            return "idle"
        return None

    def _next_action(self, hold: Hold, now: float) -> tuple[str, float]:
        """The one next action of a live, ACTIVE or RENEWING hold, and when it is due."""
        reservation = hold.reservation
        assert reservation is not None
        renewable = hold.state is not _RENEWING and self._may_renew(hold, now) is None
        return next_action(
            reservation, self.policy, self.latency.p99, now,
            warned=hold._warned, renewable=renewable,
        )

    def _plan(self, hold: Hold, now: float) -> Pending:
        """Save the one next action of a live, ACTIVE or RENEWING hold."""
        action, due = self._next_action(hold, now)
        return self._save(hold, action, due)

    def _save(self, hold: Hold, action: str, due: float) -> Pending:
        memory = self._memory
        if memory is None:
            return self._save_shared(hold, action, due)
        memory.put(hold, action, due)
        self._wake_for(due)
        return None

    async def _save_shared(self, hold: Hold, action: str, due: float) -> None:
        if self.store.shared:
            due += self.clock.wall().timestamp() - self.clock.now()
        if not await self.store.save(hold, action, due, hold._fence):
            logger.info("hold %s belongs to another worker now", hold.id)
            return
        self._wake_for(due)

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
                fire = self._fire  # returns None: the default store needs no awaits
                for due_at, hold, action in memory.pop_due(now + clock.resolution, BATCH):
                    fire(hold, action, due_at, 0, now)
                target = memory.peek_due()
            else:
                target = await self._claim_and_fire(now)
            if store.shared:
                target = now + SHARED_POLL if target is None else min(target, now + SHARED_POLL)
            if self._replan or (target is not None and target <= clock.now() + clock.resolution):
                await anyio.lowlevel.checkpoint()  # more is due already: go round again
                continue
            with anyio.CancelScope() as scope:
                self._sleep_scope, self._sleeping_until = scope, target
                if target is None:
                    await anyio.Event().wait()  # until _save cancels the scope
                else:
                    await clock.sleep_until(target)
            self._sleep_scope = self._sleeping_until = None

    async def _claim_and_fire(self, now: float) -> float | None:
        """One pass over a store reached by awaits; returns its next due time.

        The returned time is on the manager's clock, whatever the store's scale.
        """
        store, clock = self.store, self.clock
        offset = clock.wall().timestamp() - now if store.shared else 0.0
        try:
            batch = await store.claim_due(now + offset + clock.resolution, BATCH)
        except OpenTicketError:  # a store outage must not kill the scheduler
            logger.exception("claiming due work from the store failed; retrying")
            batch = []
        for due in batch:
            await settle(self._fire(due.hold, due.action, due.due - offset, due.fence, now))
        nxt = await store.next_due()
        return None if nxt is None else nxt - offset

    def _fire(self, hold: Hold, action: str, due: float, fence: int, now: float) -> Pending:
        """Act on one due action of ``hold`` (due at ``due``, claimed under ``fence``)."""
        if hold.state in TERMINAL_STATES:
            return None
        hold._fence = fence
        lateness = now - due if now > due else 0.0
        if action == WARN:
            hold._warned = True
            if self._heard(Expiring):
                self._emit(Expiring(hold, self._time_left(hold, now), lateness))
            return self._plan(hold, now)
        if action == RENEW:
            cart = self._carts.get(hold.cart_id)
            if cart is not None and cart.paused:
                cart.defer(hold)
                return self._save(hold, DROP, local_deadline(hold.reservation, self.policy))  # type: ignore[arg-type]
            reason = None if hold._risk else self._may_renew(hold, now)
            if reason is not None:
                return self._plan(hold, now)
            hold.state = HoldState.RENEWING
            self._renew_queue.append((hold, lateness))
            if self._workers < self.policy.renewal_concurrency and self._tg is not None:
                self._workers += 1
                self._tg.start_soon(self._renew_worker)
            return self._plan(hold, now)  # the safety net: warn or drop while on the wire
        return self._deadline_reached(hold, now, lateness)

    def _deadline_reached(self, hold: Hold, now: float, lateness: float) -> Pending:
        reason = self._may_renew(hold, now)
        if hold.state is _ACTIVE and reason is not None:
            return self._end(hold, HoldState.EXPIRED, Expired, lateness, 0.0, {"reason": reason})
        # due for renewal but not renewed in time (on the wire, paused, or failing)
        hold.state = HoldState.AT_RISK
        if hold.reservation is not None and not hold._risk and not hold._inflight:
            hold._risk = True
            return self._save(hold, RENEW, drop_time(hold.reservation, self.policy))
        return None

    # -- renewals --------------------------------------------------------------------

    async def _renew_worker(self) -> None:
        try:
            while self._renew_queue:
                hold, lateness = self._renew_queue.popleft()
                if not hold.done:
                    await self.renew_hold(hold, lateness)
        finally:
            self._workers -= 1

    async def renew_hold(self, hold: Hold, lateness: float = 0.0) -> bool:
        """Reserve ``hold``'s ticket again now and swap it to the new reservation.

        Returns True on success. On failure the hold follows the retry rules
        (RenewalFailed, AT_RISK, Lost) and False is returned; nothing is raised.
        """
        old = hold.reservation
        hold._inflight = True
        try:
            new = await self._reserve(
                hold.shop_guid, hold.ticket_guid, _ONE_TRY, self.clock.now()
            )
        except (APIError, TransportError, DecodeError) as exc:
            hold._inflight = False
            await self._renewal_failed(hold, exc)
            return False
        finally:
            hold._inflight = False
            cart = self._carts.get(hold.cart_id)
            if cart is not None:
                cart.renewal_finished()
        hold._attempt = 0
        now = self.clock.now()
        if hold.done:  # released or ordered meanwhile: the new unit just drops
            self._linger(hold, new, now)
            return False
        hold.reservation = new
        hold.renewals += 1
        hold.state = HoldState.ACTIVE
        hold._warned = hold._risk = False
        self._linger(hold, old, now)
        assert old is not None
        if self._heard(Renewed):
            self._emit(Renewed(hold, self._time_left(hold, now), lateness, old=old, new=new))
        if cart is not None and cart.paused:
            cart.defer(hold)
            await settle(self._save(hold, DROP, local_deadline(new, self.policy)))
        else:
            await settle(self._plan(hold, now))
        return True

    async def _renewal_failed(self, hold: Hold, error: BaseException) -> None:
        if hold.done:
            return
        now = self.clock.now()
        reservation = hold.reservation
        assert reservation is not None
        if hold._risk:
            await settle(self._end(hold, HoldState.LOST, Lost, fields={"reason": _reason(error)}))
            return
        deadline = local_deadline(reservation, self.policy)
        hold._attempt += 1
        if isinstance(error, TicketUnavailable):
            # overlap rule: while the old reservation runs, its unit is not in stock;
            # try once more just after it drops
            retry_at = drop_time(reservation, self.policy)
        else:
            hint = error.retry_after if isinstance(error, RateLimited | ServerError) else None
            wait = self.client_retry.backoff(hold._attempt, hint)
            retry_at = now + wait
            if retry_fits(now, wait, deadline, self.latency.p99):
                hold.state = HoldState.ACTIVE
                self._emit(RenewalFailed(hold, deadline - now, 0.0, error=error, will_retry=True))
                await settle(self._save(hold, RENEW, retry_at))
                return
            retry_at = max(retry_at, drop_time(reservation, self.policy))
        hold.state = HoldState.AT_RISK
        hold._risk = True
        self._emit(RenewalFailed(hold, deadline - now, 0.0, error=error, will_retry=True))
        await settle(self._save(hold, RENEW, max(retry_at, now)))

    @property
    def client_retry(self) -> RetryPolicy:
        """The backoff policy renewals use between their tries (the client's)."""
        retry = getattr(self.client, "retry", None)
        return retry if isinstance(retry, RetryPolicy) else RetryPolicy()

    # -- checkout and release (called by Cart) ------------------------------------------

    def _release(self, hold: Hold) -> Pending:
        if hold.state in TERMINAL_STATES:
            return None
        return self._end(hold, HoldState.RELEASED, Released)

    async def _ordered(self, holds: Sequence[Hold], order: Order) -> None:
        now = self.clock.now()
        fields = {"order": order}
        for hold in holds:
            time_left = self._time_left(hold, now)
            await settle(self._end(hold, HoldState.ORDERED, CheckedOut, 0.0, time_left, fields))

    async def _resume(self, holds: Sequence[Hold]) -> None:
        now = self.clock.now()
        for hold in holds:
            if hold.done or hold.reservation is None:
                continue
            if now >= local_deadline(hold.reservation, self.policy):
                await settle(self._deadline_reached(hold, now, 0.0))
            elif hold.state is HoldState.ACTIVE:
                await settle(self._plan(hold, now))

    def _forget_cart(self, cart: Cart) -> None:
        self._carts.pop(cart.id, None)
        if self._memory is not None:
            self._memory.drop_cart(cart.id)


def _reason(error: BaseException) -> str:
    if isinstance(error, TicketUnavailable):
        return "sold_out"
    return f"renewal failed: {type(error).__name__}"

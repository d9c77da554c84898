"""The manager's scheduler: one task that hands due actions to the lifecycle, and sleeps.

One scheduler task claims due actions from the store, in due order, and feeds
them to the lifecycle (through the executor's ``step``, ``_executor``); it
extends the checkout claims this manager holds (``_checkout``) while their
checkouts run. Between passes it sleeps until the next due action, the next
heartbeat or (on a shared store) the next poll, whichever comes first; whatever
plans something sooner wakes it through :class:`Wakeup`. Waiting goes through
the injected ``Clock`` only.

The default :class:`~openticket_async.stores.MemoryStore` is read without
awaits; a store reached by awaits is read by :meth:`Scheduler._claim_and_fire`,
which first writes again the plans a store of this process refused to save
(without them nothing would ever hand their holds out again). A failure while
handling one hold (a store error, a bug) is logged with its traceback and never
stops the scheduler, the other holds or the application's code; a failing store
is retried every ``SHARED_POLL`` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
import anyio.abc

from ._checkout import CheckoutClaims
from ._clock import Clock
from ._hold import Hold
from ._lifecycle import Due, Input
from ._pending import Pending, settle
from ._stats import StoreWatch
from ._telemetry import HoldMetrics
from .stores import SHARED_POLL, MemoryStore, ReservationStore

__all__ = ["BATCH", "SHARED_POLL", "Scheduler", "Wakeup"]

logger = logging.getLogger("openticket_async.manager")

#: How many due actions one scheduler pass takes before it yields to other tasks.
BATCH = 512


class Wakeup:
    """The scheduler's sleep, and the one way to end it sooner.

    Made before the scheduler, so that whatever plans work (the executor, the
    checkout claims) holds only :meth:`wake_for`, not the scheduler.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._sleep_scope: anyio.CancelScope | None = None
        #: When the sleeping scheduler plans to wake (None: awake, or until woken).
        self.sleeping_until: float | None = None
        #: Something was planned while the scheduler was awake: it looks again.
        self.replan = False

    def wake_for(self, due: float) -> None:
        """Make the scheduler look again if ``due`` comes before it planned to wake."""
        scope = self._sleep_scope
        if scope is None:
            self.replan = True  # the scheduler is awake: make it look again before sleeping
        elif self.sleeping_until is None or due < self.sleeping_until:
            scope.cancel()  # wake the scheduler: this is due before it planned to wake
            # it will look at everything planned until it runs: later plans need no
            # second cancel (thousands of adds in a row would each pay one)
            self._sleep_scope = None

    async def sleep(self, target: float | None) -> None:
        """Sleep until ``target`` on the clock (None: until woken), or until woken sooner."""
        with anyio.CancelScope() as scope:
            self._sleep_scope, self.sleeping_until = scope, target
            if target is None:
                await anyio.Event().wait()  # until wake_for cancels the scope
            else:
                await self._clock.sleep_until(target)
        self._sleep_scope = self.sleeping_until = None


class Scheduler:
    """The loop of the manager's one scheduler task, and its passes over the store.

    ``step`` feeds an input to a hold's lifecycle and carries out what it
    returns (the executor's); ``unsaved`` holds the plans a store of this
    process refused to save, shared with the executor that found them.
    """

    def __init__(
        self,
        store: ReservationStore,
        clock: Clock,
        *,
        memory: MemoryStore | None,
        step: Callable[[Hold, Input], Pending],
        due: Callable[[Hold, str, float], Pending],
        unsaved: dict[Hold, tuple[str, float]],
        checkouts: CheckoutClaims,
        wakeup: Wakeup,
        store_watch: StoreWatch,
        metrics: HoldMetrics | None,
    ) -> None:
        self.store = store
        self.clock = clock
        self._memory = memory
        self._step = step
        self._due = due
        self._unsaved = unsaved
        self._checkouts = checkouts
        self._wakeup = wakeup
        self._store_watch = store_watch
        self._metrics = metrics

    async def run(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        """Fire what comes due, for ever; reports started at once. Raises only cancellation."""
        task_status.started()
        clock, store, memory, wakeup = self.clock, self.store, self._memory, self._wakeup
        while True:
            wakeup.replan = False
            now = clock.now()
            if memory is not None:  # the default store: no Due values, no awaits
                due = self._due
                for due_at, hold, action in memory.pop_due(now + clock.resolution, BATCH):
                    try:
                        due(hold, action, due_at)  # never a Pending on this store
                    except Exception:
                        logger.exception("handling %s of hold %s failed", action, hold.id)
                target = memory.peek_due()
            else:
                target = await self._claim_and_fire(now)
            if self._checkouts:  # the heartbeats of this manager's checkout claims
                beat = await self._checkouts.keep(now)
                if beat is not None:
                    target = beat if target is None else min(target, beat)
            if store.shared:
                target = now + SHARED_POLL if target is None else min(target, now + SHARED_POLL)
            if wakeup.replan or (target is not None and target <= clock.now() + clock.resolution):
                await anyio.lowlevel.checkpoint()  # more is due already: go round again
                continue
            await wakeup.sleep(target)

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
        if self._metrics is not None and batch:
            self._metrics.store_claims(
                len(batch), sum(d.takeover for d in batch), sum(d.lapsed for d in batch)
            )
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
        """Write again the plans a store of this process refused to save (``unsaved``)."""
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


async def _contained(step_: Awaitable[None], hold: Hold, action: str) -> None:
    try:
        await step_
    except Exception:
        logger.exception("handling %s of hold %s failed", action, hold.id)

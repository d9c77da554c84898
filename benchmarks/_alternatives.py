"""The ways to keep N deadlines that scheduler_scale.py measures side by side.

Each scheduler offers the same four steps to the harness: ``start(fire)``,
``add_all(deadlines, handles)``, ``cancel_all(handles)`` and ``stop()``. Deadlines
are ``time.monotonic()`` seconds; when an entry comes due the scheduler calls
``fire(kind, due)`` with the time it was due, and the harness stamps the lateness
itself. The alternatives are what a user would otherwise write or pick:

- ``tasks``:    one asyncio task per reservation, sleeping until its deadline;
- ``call_at``:  one ``loop.call_at`` timer handle per reservation;
- ``apscheduler``: APScheduler 3 ``AsyncIOScheduler`` date jobs (async job function,
  memory job store; ``misfire_grace_time=None`` so late jobs still run and count);
- ``heapq``:    a bare heap of ``[deadline, seq, payload]`` lists with lazy cancel and one
  sleeping task;
- ``manager``:  the SDK's ReservationManager (MemoryStore), fed by a stand-in client
  whose ``reserve_ticket`` returns a prebuilt Reservation at once (no network);
- ``floor``:    the least any async hold manager must do per add and cancel, in plain
  Python, over the same stand-in client (add and cancel only: it never renews).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import itertools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

Fire = Callable[[str, float], None]

SHOP = "3f2c1d7e-8a4b-4c5d-9e6f-0a1b2c3d4e5f"
TICKET = "7b6a5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"
EVENT_DATE = "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5e"
PRODUCT = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"
#: The floor's renewal lead (the default ``HoldPolicy.renew_before``).
RENEW_BEFORE = 60.0


def reservations(deadlines: Sequence[float], ttl: float) -> list[Any]:
    """One Reservation per deadline, as the stand-in client hands them out.

    They share every field but ``guid`` and ``deadline``: the manager's own memory
    is measured without them, and the decoded Reservation is measured apart, on
    the real client (see scheduler_scale.py).
    """
    from openticket_async import Product, Reservation

    now = datetime.now(UTC)
    products = (Product(guid=PRODUCT, name="Entrance"),)
    expires = now + timedelta(seconds=ttl)
    return [
        Reservation(
            guid=f"00000000-0000-4000-8000-{i:012x}",
            shop_guid=SHOP,
            ticket_guid=TICKET,
            event_date_guid=EVENT_DATE,
            products=products,
            reserved_at=now,
            expires_at=expires,
            deadline=d,
        )
        for i, d in enumerate(deadlines)
    ]


class StandInClient:
    """Answers ``reserve_ticket`` at once with the next prebuilt Reservation.

    Offers what the manager reads from a client: ``clock``, ``reservation_ttl``,
    ``retry``, ``reserve_ticket`` and ``create_order`` (unused here).
    """

    def __init__(self, prebuilt: Sequence[Any], ttl: float) -> None:
        from openticket_async import RetryPolicy, SystemClock

        self._next: Callable[[], Any] = iter(prebuilt).__next__
        self.clock = SystemClock()
        self.reservation_ttl = ttl
        self.retry = RetryPolicy()

    async def reserve_ticket(self, shop_guid: str, ticket_guid: str, *, retry: Any = None) -> Any:
        return self._next()

    async def create_order(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the stand-in client does not make orders")


class TaskPerReservation:
    name = "tasks"
    note = "one asyncio task per reservation, asyncio.sleep until its deadline"

    async def start(self, fire: Fire) -> None:
        self._fire = fire
        self._loop = asyncio.get_running_loop()

    async def _sleeper(self, deadline: float) -> None:
        await asyncio.sleep(deadline - time.monotonic())
        self._fire("fire", deadline)

    async def add_all(self, deadlines: Sequence[float], handles: list[Any]) -> None:
        create, sleeper, add = self._loop.create_task, self._sleeper, handles.append
        for d in deadlines:
            add(create(sleeper(d)))

    async def cancel_all(self, handles: list[Any]) -> None:
        for task in handles:
            task.cancel()

    async def stop(self) -> None:
        return None


class CallAt:
    name = "call_at"
    note = "one loop.call_at TimerHandle per reservation"

    async def start(self, fire: Fire) -> None:
        self._fire = fire
        self._loop = asyncio.get_running_loop()
        # uvloop's loop.time() is its own clock: convert monotonic deadlines to it
        self._offset = self._loop.time() - time.monotonic()

    async def add_all(self, deadlines: Sequence[float], handles: list[Any]) -> None:
        call_at, fire, off, add = self._loop.call_at, self._fire, self._offset, handles.append
        for d in deadlines:
            add(call_at(d + off, fire, "fire", d))

    async def cancel_all(self, handles: list[Any]) -> None:
        for handle in handles:
            handle.cancel()

    async def stop(self) -> None:
        return None


class APScheduler3:
    name = "apscheduler"
    note = ("APScheduler 3 AsyncIOScheduler, date trigger, async job function, "
            "MemoryJobStore, misfire_grace_time=None")

    async def start(self, fire: Fire) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        self._fire = fire
        self._sched = AsyncIOScheduler(timezone=UTC)
        self._sched.start()
        self._wall_offset = time.time() - time.monotonic()

    async def _job(self, deadline: float) -> None:
        self._fire("fire", deadline)

    async def add_all(self, deadlines: Sequence[float], handles: list[Any]) -> None:
        add_job, job, off, add = self._sched.add_job, self._job, self._wall_offset, handles.append
        from_ts = datetime.fromtimestamp
        for d in deadlines:
            add(add_job(job, "date", run_date=from_ts(d + off, UTC), args=(d,),
                        misfire_grace_time=None))

    async def cancel_all(self, handles: list[Any]) -> None:
        from apscheduler.jobstores.base import JobLookupError

        for job in handles:
            with contextlib.suppress(JobLookupError):  # a date job that ran is gone
                job.remove()

    async def stop(self) -> None:
        self._sched.shutdown(wait=False)


class HeapSleeper:
    """A heap of ``[deadline, seq, payload]`` lists and the one task that sleeps until its
    first deadline, fires what came due (lazily cancelled entries have ``payload`` None)
    and sleeps again; a push that comes first sets ``_waiter`` to wake it."""

    async def start(self, fire: Fire) -> None:
        self._fire = fire
        self._loop = asyncio.get_running_loop()
        self._offset = self._loop.time() - time.monotonic()
        self._heap: list[list[Any]] = []
        self._seq: Iterator[int] = itertools.count()
        self._waiter: asyncio.Future[None] | None = None
        self._task = self._loop.create_task(self._run())

    async def _run(self) -> None:
        heap, loop, fire = self._heap, self._loop, self._fire
        while True:
            now = time.monotonic()
            while heap and heap[0][0] <= now:
                deadline, _seq, payload = heapq.heappop(heap)
                if payload is not None:
                    fire("fire", deadline)
            waiter = self._waiter = loop.create_future()
            timer = (loop.call_at(heap[0][0] + self._offset, _wake, waiter) if heap else None)
            await waiter
            if timer is not None:
                timer.cancel()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class BareHeap(HeapSleeper):
    name = "heapq"
    note = "heapq of [deadline, seq, payload] lists, lazy cancel, one sleeping task"

    def add(self, deadline: float, payload: object) -> list[Any]:
        entry = [deadline, next(self._seq), payload]
        heapq.heappush(self._heap, entry)
        waiter = self._waiter
        if self._heap[0] is entry and waiter is not None and not waiter.done():
            waiter.set_result(None)  # the sleeper waits for a later deadline: wake it
        return entry

    async def add_all(self, deadlines: Sequence[float], handles: list[Any]) -> None:
        add, keep = self.add, handles.append
        for d in deadlines:
            keep(add(d, True))

    async def cancel_all(self, handles: list[Any]) -> None:
        for entry in handles:
            entry[2] = None


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Manager:
    """The SDK's ReservationManager with a MemoryStore and the stand-in client.

    In ``punctual`` mode holds are not renewed (``auto_renew=False``,
    ``safety_margin=0``): ``Expiring`` fires ``warn_before`` ahead of each
    reservation's deadline and ``Expired`` at it; both are stamped.
    """

    name = "manager"

    def __init__(self, *, warn_before: float | None = None, ttl: float = 480.0) -> None:
        self._warn_before = warn_before
        self._ttl = ttl
        self._prebuilt: list[Any] = []
        policy = ("default HoldPolicy but max_hold=None" if warn_before is None else
                  f"auto_renew=False, safety_margin=0, warn_before={warn_before}s: "
                  "Expiring and Expired both stamped")
        self.note = ("ReservationManager + MemoryStore, cart.add(ticket) per hold with a "
                     f"stand-in client returning prebuilt Reservations; {policy}")

    def prepare(self, deadlines: Sequence[float]) -> None:
        """Build the Reservations before the timed part (they are not the manager's cost).

        In punctual mode ``deadlines`` are when ``Expiring`` is due; each
        reservation then runs out ``warn_before`` later.
        """
        shift = self._warn_before or 0.0
        self._prebuilt = reservations([d + shift for d in deadlines], self._ttl)

    async def start(self, fire: Fire) -> None:
        from openticket_async import Expired, Expiring, HoldPolicy, ReservationManager

        self._fire = fire
        #: the manager's own ``event.lateness`` per event kind, next to our stamps
        self.reported: dict[str, list[float]] = {"Expiring": [], "Expired": []}
        client = StandInClient(self._prebuilt, self._ttl)
        if self._warn_before is None:
            # the stand-in hands out deadlines of its own choosing: trust them
            policy = HoldPolicy(max_hold=None, min_server_ttl=0)
        else:
            policy = HoldPolicy(auto_renew=False, warn_before=self._warn_before,
                                safety_margin=0, max_hold=None, renew_jitter=0,
                                min_server_ttl=0)
        self._manager = ReservationManager(client, policy=policy)
        await self._manager.__aenter__()
        if self._warn_before is not None:
            self._manager.on(Expiring, self._on_expiring)
            self._manager.on(Expired, self._on_expired)
        self._cart = self._manager.cart(SHOP)

    def _on_expiring(self, event: Any) -> None:
        self._fire("Expiring", event.hold.reservation.deadline - self._warn_before)
        self.reported["Expiring"].append(event.lateness)

    def _on_expired(self, event: Any) -> None:
        self._fire("Expired", event.hold.reservation.deadline)
        self.reported["Expired"].append(event.lateness)

    async def add_all(self, deadlines: Sequence[float], handles: list[Any]) -> None:
        add, keep = self._cart.add, handles.extend
        for _ in range(len(deadlines)):
            keep(await add(TICKET))

    async def cancel_all(self, handles: list[Any]) -> None:
        remove = self._cart.remove
        for hold in handles:
            await remove(hold)

    async def stop(self) -> None:
        await self._manager.__aexit__(None, None, None)
        self._prebuilt = []


class FloorHold:
    """The least a hold keeps: its id, its cart, its reservation, when it was made,
    when its renewal is due, and its heap entry (to cancel it)."""

    __slots__ = ("cart_id", "created_at", "due", "entry", "id", "reservation")

    def __init__(self, id: str, cart_id: str, reservation: Any, created_at: float,
                 due: float) -> None:
        self.id = id
        self.cart_id = cart_id
        self.reservation = reservation
        self.created_at = created_at
        self.due = due
        self.entry: list[Any] | None = None


class Floor(HeapSleeper):
    """The floor: what any async hold manager must do per add and per cancel, in plain Python.

    ``add(ticket)``, a coroutine the harness awaits per hold as it awaits ``cart.add``:
    awaits the ``reserve_ticket`` of a :class:`StandInClient`, the manager side's
    client (its Reservations prebuilt the same way), makes a :class:`FloorHold` (an id
    from a per-manager prefix and a hex counter, as the manager's ids; the cart id; the
    reservation; the monotonic time as created-at; its renewal due ``RENEW_BEFORE`` before the
    reservation's deadline), pushes ``[due, seq, hold]`` on a heap whose one task
    sleeps until the first entry, as the ``heapq`` side's (``HeapSleeper``; woken when
    the hold comes first), and puts the hold in its cart's dict. ``remove(hold)``, a
    coroutine too: lazy-cancels the heap entry and pops the dict slot.

    It does not: check its arguments, reserve more than one unit per call (the
    manager's ``add`` returns a list), record the reserve's latency, check the
    deadline the server stated, jitter the renewal time, keep a state or lifecycle
    fields, count cancelled entries to compact the heap, release what a cancelled
    add reserved, tell the application (events), nor account for the unit the
    server keeps after a release (the manager's lingering units). It never renews:
    it is measured on add and cancel only, not on punctuality.
    """

    name = "floor"
    note = ("the least any async manager does: await the stand-in's reserve, a 6-slot "
            "hold, heappush of a lazily cancelled entry, a cart dict slot; remove: cancel "
            "the entry, pop the slot")
    #: not in the punctuality runs: its heap and task fire as the heapq side's do
    fires = False

    def __init__(self, ttl: float = 480.0) -> None:
        self._ttl = ttl
        self._prebuilt: list[Any] = []

    def prepare(self, deadlines: Sequence[float]) -> None:
        """Build the Reservations before the timed part, as the manager side does."""
        self._prebuilt = reservations(deadlines, self._ttl)

    async def start(self, fire: Fire) -> None:
        await super().start(fire)
        self._client = StandInClient(self._prebuilt, self._ttl)
        self._cart_id = "cart"
        self._cart: dict[str, FloorHold] = {}
        self._prefix = base64.urlsafe_b64encode(os.urandom(6)).decode()  # as the manager's
        self._count = 0

    async def add(self, ticket_guid: str) -> FloorHold:
        """Reserve one unit of ``ticket_guid`` and keep it (see the class docstring)."""
        reservation = await self._client.reserve_ticket(SHOP, ticket_guid)
        self._count += 1
        hold = FloorHold(f"{self._prefix}-{self._count:x}", self._cart_id, reservation,
                         time.monotonic(), reservation.deadline - RENEW_BEFORE)
        heap = self._heap
        entry = hold.entry = [hold.due, next(self._seq), hold]
        heapq.heappush(heap, entry)
        self._cart[hold.id] = hold
        waiter = self._waiter
        if heap[0] is entry and waiter is not None and not waiter.done():
            waiter.set_result(None)  # the sleeper waits for a later deadline: wake it
        return hold

    async def remove(self, hold: FloorHold) -> None:
        """Stop keeping ``hold``: lazy-cancel its heap entry, pop its dict slot."""
        entry = hold.entry
        if entry is not None:
            entry[2] = None
            hold.entry = None
        self._cart.pop(hold.id, None)

    async def add_all(self, deadlines: Sequence[float], handles: list[Any]) -> None:
        add, keep = self.add, handles.append
        for _ in range(len(deadlines)):
            keep(await add(TICKET))

    async def cancel_all(self, handles: list[Any]) -> None:
        remove = self.remove
        for hold in handles:
            await remove(hold)

    async def stop(self) -> None:
        await super().stop()
        self._prebuilt = []


ALL: dict[str, Callable[[], Any]] = {
    "manager": Manager,
    "tasks": TaskPerReservation,
    "call_at": CallAt,
    "apscheduler": APScheduler3,
    "heapq": BareHeap,
    "floor": Floor,
}

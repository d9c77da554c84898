"""Shared arrangements for the ReservationManager tests (fake server + FakeClock)."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from openticket_async import (
    CheckedOut,
    Clock,
    Expired,
    Hold,
    HoldEvent,
    HoldPolicy,
    Lost,
    Order,
    Receiver,
    Released,
    Reservation,
    RetryPolicy,
)
from openticket_async._ports import ReservingClient
from openticket_async.stores import CartClaim, CartTaken, Due, EventSink, ReservationStore
from openticket_async.testing import FakeClock, FakeOpenTicket

TERMINAL = (Lost, Expired, Released, CheckedOut)
RECEIVER = Receiver(email="buyer@example.com", firstname="Ada", lastname="Lovelace")


class Recorder:
    """Collects every event a manager emits, in order."""

    def __init__(self) -> None:
        self.events: list[HoldEvent] = []

    def __call__(self, event: HoldEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def names_for(self, hold: object) -> list[str]:
        return [type(event).__name__ for event in self.events if event.hold is hold]

    def terminal_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for event in self.events:
            if isinstance(event, TERMINAL):
                counts[event.hold.id] += 1
        return counts


def live_guids(fake: FakeOpenTicket, ticket_guid: str | None = None) -> set[str]:
    """GUIDs of the reservations the fake server holds right now."""
    return {r.guid for r in fake.live_reservations(ticket_guid)}


def task_name(task: asyncio.Task[Any]) -> str:
    """The qualified name of the function a task runs (anyio names tasks after it)."""
    return task.get_name().removeprefix("openticket_async._manager.")


def manager_tasks() -> list[asyncio.Task[Any]]:
    """Running tasks started by a ReservationManager or its event dispatcher."""
    owners = ("ReservationManager.", "EventDispatcher.")
    return [
        t for t in asyncio.all_tasks() if owners[0] in t.get_name() or owners[1] in t.get_name()
    ]


class InjectedFault(RuntimeError):
    """An unexpected exception a test injects (not an OpenTicketError)."""


class FlakyClient:
    """A real client behind a switch: ``reserve_ticket`` raises :class:`InjectedFault`
    for the next ``fail_reserves`` calls, before anything goes on the wire.

    Satisfies ``ReservingClient``; every reservation the real client returns is
    kept in ``returned``.
    """

    def __init__(self, inner: ReservingClient) -> None:
        self.inner = inner
        self.fail_reserves = 0
        self.returned: list[Reservation] = []

    @property
    def clock(self) -> Clock:
        return self.inner.clock

    @property
    def retry(self) -> RetryPolicy:
        return self.inner.retry

    @property
    def reservation_ttl(self) -> float:
        return self.inner.reservation_ttl

    async def reserve_ticket(
        self, shop_guid: str, ticket_guid: str, *, retry: RetryPolicy | None = None
    ) -> Reservation:
        if self.fail_reserves > 0:
            self.fail_reserves -= 1
            raise InjectedFault("reserve_ticket failed unexpectedly")
        reservation = await self.inner.reserve_ticket(shop_guid, ticket_guid, retry=retry)
        self.returned.append(reservation)
        return reservation

    async def create_order(
        self,
        shop_guid: str,
        reservations: Sequence[Reservation],
        *,
        receiver: Receiver,
        payment_method: str,
        currency: str,
        idempotency_key: str | None = None,
    ) -> Order:
        return await self.inner.create_order(
            shop_guid,
            reservations,
            receiver=receiver,
            payment_method=payment_method,
            currency=currency,
            idempotency_key=idempotency_key,
        )


class FlakyStore:
    """A real store behind a switch: an armed operation raises :class:`InjectedFault`
    instead of reaching the store.

    It also keeps what the store was told: ``planned`` maps each hold id to the
    plan the store holds for it (a claim by a store of one process takes it out;
    a shared store keeps a claimed hold queued under its lease),
    ``failed_saves`` the holds whose latest save was refused by the switch, and
    ``failed_at`` the clock reading of the latest refusal.
    """

    def __init__(self, inner: ReservationStore) -> None:
        self.inner = inner
        self.shared = inner.shared
        self.failing: Counter[str] = Counter()
        self.planned: dict[str, tuple[str, float]] = {}
        self.failed_saves: set[str] = set()
        self.failed_at: float | None = None
        self._clock: Clock | None = None

    @property
    def event_sink(self) -> EventSink | None:
        return self.inner.event_sink

    def fail(self, operation: str, times: int) -> None:
        """Make the next ``times`` calls of ``operation`` raise."""
        self.failing[operation] += times

    def _trip(self, operation: str) -> None:
        if self.failing[operation] > 0:
            self.failing[operation] -= 1
            self.failed_at = None if self._clock is None else self._clock.now()
            raise InjectedFault(f"store {operation} failed")

    def bind(self, clock: Clock, policy: HoldPolicy) -> None:
        self._clock = clock
        self.inner.bind(clock, policy)

    async def save(self, hold: Hold, action: str, due: float, fence: int = 0) -> bool:
        try:
            self._trip("save")
        except InjectedFault:
            self.failed_saves.add(hold.id)
            raise
        saved = await self.inner.save(hold, action, due, fence)
        if saved:
            self.planned[hold.id] = (action, due)
            self.failed_saves.discard(hold.id)
        return saved

    async def forget(self, hold: Hold, fence: int = 0) -> bool:
        self._trip("forget")
        forgotten = await self.inner.forget(hold, fence)
        if forgotten:
            self.planned.pop(hold.id, None)
        return forgotten

    async def claim_due(self, now: float, limit: int) -> list[Due]:
        self._trip("claim_due")
        claimed = await self.inner.claim_due(now, limit)
        if not self.shared:
            for due in claimed:
                self.planned.pop(due.hold.id, None)
        return claimed

    async def next_due(self) -> float | None:
        self._trip("next_due")
        return await self.inner.next_due()

    async def cart_holds(self, cart_id: str) -> list[Hold]:
        return await self.inner.cart_holds(cart_id)

    async def claim_cart(self, cart_id: str, lease: float) -> CartClaim | CartTaken:
        self._trip("claim_cart")
        return await self.inner.claim_cart(cart_id, lease)

    async def extend_cart_claim(self, claim: CartClaim) -> bool:
        self._trip("extend_cart_claim")
        return await self.inner.extend_cart_claim(claim)

    async def release_cart(self, claim: CartClaim) -> bool:
        self._trip("release_cart")
        return await self.inner.release_cart(claim)

    async def aclose(self) -> None:
        await self.inner.aclose()


class StallingClock(FakeClock):
    """A FakeClock whose :meth:`stall` jumps time as a blocked event loop sees it."""

    async def stall(self, seconds: float) -> None:
        """Time passes while the loop runs nothing; then every overdue sleeper wakes
        at once, late, at the new time (not each at its own deadline, as ``advance``)."""
        self._now += seconds
        await self.advance(0)


def open_sockets() -> int:
    """How many sockets this process has open (Linux)."""
    fds = os.listdir("/proc/self/fd")
    count = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count

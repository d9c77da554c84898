"""A hypothesis state machine drives the manager against the fake server.

Rules add, remove, check out, advance the clock and inject faults in any order;
after every step the invariants of DESIGN.md section 4 must hold: no hold dropped
silently, no live unit on the server that the manager does not account for,
exactly one terminal event per ended hold, and per-hold events in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from manager_helpers import RECEIVER, TERMINAL

from openticket_async import (
    BearerToken,
    Hold,
    HoldEvent,
    HoldPolicy,
    HoldState,
    OpenTicketClient,
    OpenTicketError,
    Renewed,
    ReservationManager,
    RetryPolicy,
)
from openticket_async._planning import local_deadline
from openticket_async.testing import FakeClock, FakeOpenTicket

POLICY = HoldPolicy(renew_jitter=0, max_hold=None)


class ManagerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.events: list[HoldEvent] = []
        self.holds: list[Hold] = []
        ready = asyncio.Event()
        self.stop = asyncio.Event()
        # the manager's task group must be entered and left in one task: a host
        # task owns the fake, the client and the manager; rules run beside it
        self.host = self.loop.create_task(self._host(ready))
        self.run(ready.wait())

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _host(self, ready: asyncio.Event) -> None:
        self.clock = FakeClock()
        async with FakeOpenTicket(clock=self.clock) as self.fake:
            self.shop = self.fake.add_shop()
            self.tickets = [self.fake.add_ticket(self.shop, stock=3) for _ in range(2)]
            self.method = self.fake.add_payment_method(self.shop)
            async with (
                OpenTicketClient(
                    auth=BearerToken(self.fake.issue_token().access_token),
                    hosts=self.fake.hosts,
                    clock=self.clock,
                    # no client-side retries: their backoff would wait on the virtual
                    # clock, which only the advance rule moves; renewals retry anyway
                    retry=RetryPolicy(attempts=1),
                ) as self.client,
                ReservationManager(self.client, policy=POLICY) as self.manager,
            ):
                self.manager.on(HoldEvent, self.events.append)
                self.carts = [self.manager.cart(self.shop.guid) for _ in range(3)]
                ready.set()
                await self.stop.wait()

    def teardown(self) -> None:
        try:
            self.stop.set()
            self.run(self.host)
        finally:
            self.loop.close()

    @rule(cart=st.integers(0, 2), ticket=st.integers(0, 1), quantity=st.integers(1, 2))
    def add(self, cart: int, ticket: int, quantity: int) -> None:
        async def go() -> None:
            with contextlib.suppress(OpenTicketError):
                self.holds += await self.carts[cart].add(self.tickets[ticket].guid, quantity)

        self.run(go())

    @rule(cart=st.integers(0, 2), pick=st.integers(0, 5))
    def remove(self, cart: int, pick: int) -> None:
        holds = self.carts[cart].holds
        if holds:
            self.run(self.carts[cart].remove(holds[pick % len(holds)]))

    @rule(cart=st.integers(0, 2))
    def checkout(self, cart: int) -> None:
        async def go() -> None:
            with contextlib.suppress(OpenTicketError):
                await self.carts[cart].checkout(
                    receiver=RECEIVER, payment_method=self.method.guid, currency="EUR"
                )

        self.run(go())

    @rule(seconds=st.sampled_from([1.0, 30.0, 120.0, 400.0]))
    def advance(self, seconds: float) -> None:
        self.run(self.clock.advance(seconds))

    @rule(status=st.sampled_from([409, 429, 503]), route=st.sampled_from(["reserve", "order"]))
    def inject_fault(self, status: int, route: str) -> None:
        retry_after = 5.0 if status == 429 else None
        self.fake.faults.status(route, status, retry_after=retry_after, times=1)

    @invariant()
    def no_hold_is_dropped_silently(self) -> None:
        now = self.clock.now()
        live = {r.guid for r in self.fake.live_reservations()}
        for hold in self.holds:
            if hold.done:
                continue
            assert hold.state in (HoldState.ACTIVE, HoldState.RENEWING, HoldState.AT_RISK)
            reservation = hold.reservation
            assert reservation is not None
            if hold.state is HoldState.ACTIVE:
                # an active hold past its deadline would be a silent drop
                assert local_deadline(reservation, POLICY) > now, f"{hold} ran out unnoticed"
                assert reservation.guid in live, f"{hold} is active but the server dropped it"

    @invariant()
    def every_live_server_unit_is_accounted_for(self) -> None:
        live = {r.guid for r in self.fake.live_reservations()}
        tracked = {h.reservation.guid for h in self.holds if not h.done and h.reservation}
        lingering = self.manager.lingering()
        tracked |= {u.reservation_guid for u in lingering if u.reservation_guid}
        uncertain = sum(1 for u in lingering if u.reservation_guid is None)
        assert len(live - tracked) <= uncertain, "a live unit on the server is untracked"

    @invariant()
    def each_hold_has_one_terminal_event_last_and_events_in_order(self) -> None:
        per_hold: dict[str, list[HoldEvent]] = {}
        for event in self.events:
            per_hold.setdefault(event.hold.id, []).append(event)
        for hold in self.holds:
            events = per_hold.get(hold.id, [])
            terminals = [i for i, e in enumerate(events) if isinstance(e, TERMINAL)]
            if hold.done:
                assert terminals == [len(events) - 1], f"{hold}: {events}"
            else:
                assert terminals == []
            renewed = [e for e in events if isinstance(e, Renewed)]
            for before, after in itertools.pairwise(renewed):
                assert after.old is before.new


ManagerMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_manager_state_machine = ManagerMachine.TestCase

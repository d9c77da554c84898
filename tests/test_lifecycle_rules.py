"""Rules of the hold lifecycle that the mutation run (docs/mutation-testing.md) found
no test pinning: each test here kills at least one mutant that survived the others.

Plain numbers, no event loop, one hold in ``tests/lifecycle_world.World``; each test
asserts what ``step()`` returns (plans, reserves, events) and the hold's state.
"""

from __future__ import annotations

import pytest
from lifecycle_world import TTL, World

from openticket_async import HoldPolicy, HoldState, RateLimited, ServerError, TicketUnavailable
from openticket_async._events import AtRisk, Expired, Expiring, RenewalFailed, Renewed
from openticket_async._lifecycle import (
    CheckoutStarted,
    Due,
    Emit,
    Plan,
    Reserve,
    classify,
    orphaned,
)

#: The World's deadline: the first reservation's, less the default safety margin.
DEADLINE = TTL - 2.0


def fire_pending(world: World) -> None:
    """Advance to the pending action and fire it."""
    pending = world.pending
    assert pending is not None
    world.now = max(world.now, pending.at)
    assert world.fire_due()


def reserves(actions: list[object]) -> list[Reserve]:
    return [a for a in actions if isinstance(a, Reserve)]


# -- claims ---------------------------------------------------------------------------------


def test_a_claim_for_another_action_at_the_same_time_is_not_fired() -> None:
    world = World()
    pending = world.pending
    assert pending is not None
    assert pending.action == "renew"
    world.now = pending.at
    actions = world.feed(Due("drop", pending.at))
    assert actions == [Plan("renew", pending.at)]
    assert world.hold.state is HoldState.ACTIVE
    assert world.events == []


def test_a_claim_read_back_from_a_store_fires() -> None:
    world = World()
    pending = world.pending
    assert pending is not None
    world.now = pending.at
    action = "".join(["re", "new"])  # equal to the planned action, not the same object
    assert action is not pending.action
    actions = world.feed(Due(action, pending.at))
    assert len(reserves(actions)) == 1


def test_a_claim_early_by_less_than_a_second_is_put_back_on_an_exact_clock() -> None:
    world = World()  # Rules' resolution is 0: any early claim is early
    pending = world.pending
    assert pending is not None
    world.now = pending.at - 0.5
    actions = world.feed(Due(pending.action, pending.at))
    assert actions == [Plan(pending.action, pending.at)]
    assert world.queued == 0


def test_a_claim_early_by_less_than_the_clock_resolution_fires() -> None:
    world = World()
    world.rules.resolution = 0.01
    pending = world.pending
    assert pending is not None
    world.now = pending.at - 0.005
    actions = world.feed(Due(pending.action, pending.at))
    assert len(reserves(actions)) == 1
    assert world.hold.state is HoldState.RENEWING


def test_a_renewal_claimed_within_the_resolution_but_before_the_floor_is_put_back() -> None:
    world = World(HoldPolicy(renew_before=600, renew_jitter=0, max_hold=None), now=100.0)
    world.rules.resolution = 0.01
    assert world.pending == Plan("renew", 101.0)  # the floor: made at 100, interval 1 s
    world.now = 100.995
    actions = world.feed(Due("renew", 101.0))
    assert actions == [Plan("renew", 101.0)]
    assert world.hold.state is HoldState.ACTIVE


def test_expiring_fired_on_time_is_not_late() -> None:
    world = World(HoldPolicy(auto_renew=False, renew_jitter=0))
    fire_pending(world)
    assert world.emitted(Expiring) == [Emit(Expiring, 0.0)]


def test_expiring_lateness_counts_from_its_planned_time() -> None:
    world = World(HoldPolicy(auto_renew=False, renew_jitter=0))
    pending = world.pending
    assert pending == Plan("warn", DEADLINE - 30.0)
    world.now = pending.at + 2.5  # the loop stalled
    world.fire_due()
    [expiring] = world.emitted(Expiring)
    assert expiring.lateness == pytest.approx(2.5)


# -- when a hold may be renewed -------------------------------------------------------------


def test_a_scheduled_renewal_waits_its_turn_in_the_renewal_queue() -> None:
    world = World()
    pending = world.pending
    assert pending is not None
    world.now = pending.at
    actions = world.feed(Due(pending.action, pending.at))
    assert reserves(actions) == [Reserve(first=False)]  # only a checkout's goes first


def test_a_hold_younger_than_max_hold_renews() -> None:
    world = World(HoldPolicy(max_hold=1800, renew_jitter=0))
    fire_pending(world)
    assert world.queued == 1
    assert world.hold.state is HoldState.RENEWING


def test_a_hold_kept_for_max_hold_expires_at_its_deadline() -> None:
    world = World(HoldPolicy(max_hold=DEADLINE - 60, renew_jitter=0, warn_before=0))
    fire_pending(world)  # the renewal comes due just as max_hold is reached: not sent
    assert world.queued == 0
    assert world.pending == Plan("drop", DEADLINE)
    fire_pending(world)
    assert [e.fields["reason"] for e in world.emitted(Expired)] == ["max_hold"]
    assert world.hold.state is HoldState.EXPIRED


def test_an_idle_cart_stops_renewing_and_its_hold_expires() -> None:
    world = World(HoldPolicy(idle_timeout=300, renew_jitter=0, warn_before=0, max_hold=None))
    renewal = DEADLINE - 60
    world.rules.touched_at = lambda _cart_id: renewal - 300  # idle_timeout ago at renewal time
    fire_pending(world)  # the renewal comes due, and is not sent
    assert world.queued == 0
    assert world.pending == Plan("drop", DEADLINE)
    fire_pending(world)
    assert [e.fields["reason"] for e in world.emitted(Expired)] == ["idle"]


def test_a_cart_in_use_keeps_renewing() -> None:
    world = World(HoldPolicy(idle_timeout=300, renew_jitter=0, max_hold=None))
    world.rules.touched_at = lambda _cart_id: 200.0  # used 218 s before renewal time
    fire_pending(world)
    assert world.queued == 1


def test_a_hold_of_a_cart_this_process_does_not_know_keeps_renewing() -> None:
    world = World(HoldPolicy(idle_timeout=300, renew_jitter=0, max_hold=None))
    world.rules.touched_at = lambda _cart_id: None  # another worker's cart
    fire_pending(world)
    assert world.queued == 1


# -- the floor (I4) and the deadline --------------------------------------------------------


def test_a_new_hold_renews_no_sooner_than_the_floor_after_its_reserve() -> None:
    # a renew_before longer than the TTL puts the renewal time in the past
    world = World(HoldPolicy(renew_before=600, renew_jitter=0, max_hold=None), now=100.0)
    assert world.pending == Plan("renew", 101.0)  # made at 100, min_renew_interval 1 s


def test_a_hold_with_no_safety_margin_renews_before_its_deadline() -> None:
    world = World(HoldPolicy(safety_margin=0, renew_jitter=0, max_hold=None))
    assert world.pending == Plan("renew", TTL - 60.0)
    fire_pending(world)
    assert world.queued == 1
    world.send()
    world.answer()
    assert len(world.emitted(Renewed)) == 1


def test_a_retry_ending_just_before_the_deadline_is_tried_while_no_latency_is_known() -> None:
    world = World(HoldPolicy(renew_before=20, warn_before=0, renew_jitter=0, max_hold=None))
    fire_pending(world)  # the renewal at DEADLINE - 20
    world.send()
    error = RateLimited("slow down", retry_after=19.5, status=429, method="POST", path="/r")
    world.refuse(classify(error))
    assert world.hold.state is HoldState.ACTIVE  # it fits: no latency is known yet
    assert world.pending == Plan("renew", DEADLINE - 0.5)


def test_checkout_close_to_the_deadline_renews_the_hold_first() -> None:
    world = World()
    world.now = DEADLINE - 50.0  # the renewal, due 10 s ago, waits behind a stalled loop
    actions = world.feed(CheckoutStarted())
    assert reserves(actions) == [Reserve(first=True)]
    assert world.hold.state is HoldState.RENEWING


def test_sold_out_makes_the_hold_at_risk_with_an_on_time_event() -> None:
    world = World()
    fire_pending(world)
    world.send()
    world.refuse(classify(TicketUnavailable("gone", status=409, method="POST", path="/r")))
    assert world.hold.state is HoldState.AT_RISK
    assert world.emitted(AtRisk) == [Emit(AtRisk, 0.0, {"reason": "sold_out"})]


def test_a_failed_renewal_is_reported_on_time() -> None:
    world = World()
    fire_pending(world)
    world.send()
    error = ServerError("oops", retry_after=None, status=500, method="POST", path="/r")
    world.refuse(classify(error))
    assert world.emitted(RenewalFailed) == [
        Emit(RenewalFailed, 0.0, {"error": error, "will_retry": True})
    ]


# -- a shared store's records --------------------------------------------------------------


def test_a_renewal_orphaned_by_a_dead_worker_leaves_the_hold_active() -> None:
    world = World()
    world.hold.state = HoldState.RENEWING  # as a shared record says; nothing on the wire here
    orphaned(world.hold)
    assert world.hold.state is HoldState.ACTIVE


def test_a_hold_at_risk_is_not_orphaned() -> None:
    world = World()
    world.hold.state = HoldState.AT_RISK
    orphaned(world.hold)
    assert world.hold.state is HoldState.AT_RISK

"""When a hold is renewed and how a failed renewal is retried: rules of the hold
lifecycle that the mutation run (docs/mutation-testing.md) found no test pinning.
Each test here kills at least one mutant that survived the others.

Plain numbers, no event loop, one hold in ``tests/lifecycle_world.World`` (made at
``T0`` by ``tests/lifecycle_rules_kit``); each test asserts what ``step()`` returns
(plans, reserves, events) and the hold's state.
"""

from __future__ import annotations

import pytest
from lifecycle_rules_kit import (
    DEADLINE,
    RENEWAL,
    T0,
    LongestBackoff,
    fire_pending,
    renewal_on_the_wire,
    reserves,
    world_of,
)
from lifecycle_world import TTL, World

from openticket_async import (
    HoldPolicy,
    HoldState,
    RateLimited,
    RetryPolicy,
    ServerError,
    TicketUnavailable,
)
from openticket_async._events import AtRisk, Expired, Renewed
from openticket_async._lifecycle import Due, Plan, Remove, Reserve, classify, not_before, sending

# -- when a hold is renewed ------------------------------------------------------------------


def test_a_scheduled_renewal_waits_its_turn_in_the_renewal_queue() -> None:
    world = world_of()
    world.now = RENEWAL
    actions = world.feed(Due("renew", RENEWAL))
    assert reserves(actions) == [Reserve(first=False)]  # only a checkout's goes first
    assert world.hold.state is HoldState.RENEWING


def test_a_hold_younger_than_max_hold_renews() -> None:
    world = world_of(max_hold=1800)
    fire_pending(world)
    assert world.queued == 1


@pytest.mark.parametrize("max_hold", [RENEWAL - T0, 300.0], ids=["reached", "passed"])
def test_a_hold_kept_for_max_hold_expires_at_its_deadline(max_hold: float) -> None:
    world = world_of(max_hold=max_hold, warn_before=0)
    fire_pending(world)  # the renewal comes due once max_hold is reached: not sent
    assert world.queued == 0
    assert world.pending == Plan("drop", DEADLINE)
    fire_pending(world)
    assert [e.fields["reason"] for e in world.emitted(Expired)] == ["max_hold"]
    assert world.hold.state is HoldState.EXPIRED


def test_max_hold_counts_a_holds_age_on_a_clock_that_started_recently() -> None:
    world = World(HoldPolicy(max_hold=300, renew_jitter=0, warn_before=0), now=100.0)
    fire_pending(world)  # the renewal at 518 s: the hold is 418 s old
    assert world.queued == 0
    assert world.pending == Plan("drop", 100.0 + TTL - 2.0)


@pytest.mark.parametrize("touched", [RENEWAL - 300, T0 - 400], ids=["reached", "long-passed"])
def test_an_idle_cart_stops_renewing_and_its_hold_expires(touched: float) -> None:
    world = world_of(idle_timeout=300, warn_before=0)
    world.rules.touched_at = lambda _cart_id: touched  # idle_timeout or more before renewal
    fire_pending(world)  # the renewal comes due, and is not sent
    assert world.queued == 0
    assert world.pending == Plan("drop", DEADLINE)
    fire_pending(world)
    assert [e.fields["reason"] for e in world.emitted(Expired)] == ["idle"]


def test_a_cart_in_use_keeps_renewing() -> None:
    world = world_of(idle_timeout=300)
    world.rules.touched_at = lambda _cart_id: RENEWAL - 200
    fire_pending(world)
    assert world.queued == 1


def test_a_hold_of_a_cart_this_process_does_not_know_keeps_renewing() -> None:
    world = world_of(idle_timeout=300)
    world.rules.touched_at = lambda _cart_id: None  # another worker's cart
    fire_pending(world)
    assert world.queued == 1


def test_a_new_hold_renews_no_sooner_than_the_floor_after_its_reserve() -> None:
    world = world_of(renew_before=600, min_renew_interval=5)  # its renewal time is past
    assert world.pending == Plan("renew", T0 + 5.0)


def test_a_renewal_the_floor_pushes_past_the_deadline_gives_way_to_the_deadline() -> None:
    world = world_of(min_renew_interval=500, warn_before=0)
    assert world.pending == Plan("drop", DEADLINE)  # no try is planned past the drop (I5)


def test_a_renewed_hold_plans_its_next_renewal_from_the_new_reservation() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.answer()
    # sent at RENEWAL, the new reservation runs TTL; renewed 60 s before its local deadline
    assert world.pending == Plan("renew", RENEWAL + TTL - 2.0 - 60.0)


def test_a_renewal_due_at_the_floor_goes_out() -> None:
    world = world_of(renew_before=600, min_renew_interval=5)
    fire_pending(world)  # at T0 + 5, just as the floor allows
    assert world.queued == 1


def test_a_renewal_due_exactly_at_the_deadline_gives_way_to_the_deadline() -> None:
    world = world_of(renew_before=0, warn_before=0)
    assert world.pending == Plan("drop", DEADLINE)


def test_a_hold_with_no_safety_margin_renews_before_its_deadline() -> None:
    world = world_of(safety_margin=0)
    assert world.pending == Plan("renew", T0 + TTL - 60.0)
    fire_pending(world)
    assert world.send()
    world.answer()
    assert len(world.emitted(Renewed)) == 1


# -- retries ---------------------------------------------------------------------------------


def test_a_retry_after_a_quick_failure_waits_for_the_floor() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    error = ServerError("oops", retry_after=None, status=500, method="POST", path="/r")
    world.refuse(classify(error))
    # the backoff after one failure is at most 0.25 s: the floor after the send decides
    assert world.pending == Plan("renew", RENEWAL + 1.0)


def test_the_renewal_worker_waits_the_floor_after_the_last_send() -> None:
    world = world_of(min_renew_interval=5)
    assert not_before(world.hold, world.rules) == T0 + 5.0


def test_the_risk_try_keeps_the_floor_after_the_last_send() -> None:
    world = world_of(min_renew_interval=120)
    renewal_on_the_wire(world)
    world.refuse(classify(TicketUnavailable("gone", status=409, method="POST", path="/r")))
    fire_pending(world)  # Expiring
    assert world.pending == Plan("renew", RENEWAL + 120)  # 56 s after the drop, not at it


def test_a_reserve_already_on_the_wire_is_not_sent_again() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    assert sending(world.hold, world.now + 5.0) is None


def test_each_failed_try_in_a_row_doubles_the_backoff_ceiling() -> None:
    world = world_of()
    world.rules.retry = RetryPolicy(backoff_base=2.0)
    world.rules.rng = LongestBackoff()
    renewal_on_the_wire(world)
    error = ServerError("oops", retry_after=None, status=500, method="POST", path="/r")
    world.refuse(classify(error))
    assert world.pending == Plan("renew", RENEWAL + 2.0)
    fire_pending(world)
    assert world.send()
    world.refuse(classify(error))
    assert world.pending == Plan("renew", RENEWAL + 2.0 + 4.0)


def test_a_late_answer_to_an_ended_hold_leaves_nothing_in_flight() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.feed(Remove())
    world.answer()  # the unit lingers; the cart's close no longer waits for it
    assert not world.hold._inflight


def test_a_hold_with_no_reserve_queued_sends_none() -> None:
    world = world_of()
    assert sending(world.hold, RENEWAL) is None


def test_a_hold_counts_its_renewals() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.answer()
    fire_pending(world)
    assert world.send()
    world.answer()
    assert world.hold.renewals == 2


def test_a_renewal_resets_the_backoff() -> None:
    world = world_of()
    world.rules.retry = RetryPolicy(backoff_base=2.0)
    world.rules.rng = LongestBackoff()
    error = ServerError("oops", retry_after=None, status=500, method="POST", path="/r")
    renewal_on_the_wire(world)
    world.refuse(classify(error))  # one failure: the retry waits 2 s
    fire_pending(world)
    assert world.send()
    world.answer()
    fire_pending(world)  # the next renewal
    assert world.send()
    sent = world.now
    world.refuse(classify(error))
    assert world.pending == Plan("renew", sent + 2.0)  # a first failure again, not a second


def test_a_retry_the_floor_pushes_past_the_deadline_makes_the_hold_at_risk_at_once() -> None:
    world = world_of(renew_before=0.5, warn_before=0)
    world.rules.rng = LongestBackoff()  # a 0.25 s backoff would still fit
    renewal_on_the_wire(world, at=DEADLINE - 0.5)
    error = ServerError("oops", retry_after=None, status=500, method="POST", path="/r")
    world.refuse(classify(error))  # but the floor puts the retry 0.5 s past the deadline
    assert world.hold.state is HoldState.AT_RISK
    assert [e.fields["reason"] for e in world.emitted(AtRisk)] == ["retry would pass the deadline"]


def test_a_retry_ending_just_before_the_deadline_is_tried_while_no_latency_is_known() -> None:
    world = world_of(renew_before=20, warn_before=0)
    assert world.pending == Plan("renew", DEADLINE - 20)
    fire_pending(world)
    assert world.send()
    error = RateLimited("slow down", retry_after=19.5, status=429, method="POST", path="/r")
    world.refuse(classify(error))
    assert world.hold.state is HoldState.ACTIVE  # it fits: no latency is known yet
    assert world.pending == Plan("renew", DEADLINE - 0.5)

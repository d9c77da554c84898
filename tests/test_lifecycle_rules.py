"""Rules of the hold lifecycle that the mutation run (docs/mutation-testing.md) found
no test pinning: each test here kills at least one mutant that survived the others.

Plain numbers, no event loop, one hold in ``tests/lifecycle_world.World``; each test
asserts what ``step()`` returns (plans, reserves, events) and the hold's state. The
hold is made at ``T0``, not at 0, so that no rule holds by the accident of a zero.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from lifecycle_world import TTL, World

from openticket_async import (
    HoldPolicy,
    HoldState,
    Order,
    RateLimited,
    RetryPolicy,
    ServerError,
    TicketUnavailable,
    TransportError,
)
from openticket_async._events import (
    AtRisk,
    CheckedOut,
    Expired,
    Expiring,
    Lost,
    RenewalFailed,
    Renewed,
)
from openticket_async._lifecycle import (
    CheckoutFailed,
    CheckoutStarted,
    CheckoutSucceeded,
    Due,
    Emit,
    Plan,
    Remove,
    Reserve,
    classify,
    ended_elsewhere,
    not_before,
    orphaned,
    sending,
)
from openticket_async._planning import RENEW, WARN

ORDER = Order(guid="33333333-3333-4333-8333-333333333333", status="paid", tickets=())
T0 = 1000.0
#: The hold's local deadline: its first reservation's, less the default safety margin.
DEADLINE = T0 + TTL - 2.0
#: When its renewal is planned with the defaults and no jitter (renew_before 60 s).
RENEWAL = DEADLINE - 60.0
#: When Expiring is planned with the defaults (warn_before 30 s).
WARNING = DEADLINE - 30.0


def world_of(**policy: Any) -> World:
    """A hold made at T0, with no jitter and no max_hold unless ``policy`` says."""
    return World(HoldPolicy(**{"renew_jitter": 0, "max_hold": None, **policy}), now=T0)


def fire_pending(world: World) -> None:
    """Advance to the pending action and fire it."""
    pending = world.pending
    assert pending is not None
    world.now = max(world.now, pending.at)
    assert world.fire_due()


def renewal_on_the_wire(world: World, at: float = RENEWAL) -> None:
    """Fire the renewal planned at ``at`` and send its reserve."""
    assert world.pending == Plan("renew", at)
    fire_pending(world)
    assert world.send()


def reserves(actions: list[object]) -> list[Reserve]:
    return [a for a in actions if isinstance(a, Reserve)]


# -- claims ---------------------------------------------------------------------------------


@pytest.mark.parametrize("other", ["drop", "warn"])
def test_a_claim_for_another_action_at_the_same_time_is_not_fired(other: str) -> None:
    world = world_of()
    world.now = RENEWAL
    actions = world.feed(Due(other, RENEWAL))
    assert actions == [Plan("renew", RENEWAL)]
    assert world.hold.state is HoldState.ACTIVE
    assert world.events == []


def test_a_claim_of_the_pending_action_at_another_time_is_not_fired() -> None:
    world = world_of()
    world.now = 2 * RENEWAL  # a claim restored from an older plan, due later
    actions = world.feed(Due("renew", 2 * RENEWAL))
    assert actions == [Plan("renew", RENEWAL)]
    assert world.queued == 0


def test_a_claim_half_a_second_off_its_plan_is_not_fired() -> None:
    world = world_of()
    world.now = RENEWAL + 0.5
    actions = world.feed(Due("renew", RENEWAL + 0.5))  # a store keeps times to the ms
    assert actions == [Plan("renew", RENEWAL)]
    assert world.queued == 0


def test_a_stale_renewal_claim_while_the_risk_try_is_on_the_wire_sends_nothing() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.refuse(classify(TicketUnavailable("gone", status=409, method="POST", path="/r")))
    fire_pending(world)  # Expiring
    risk_try = world.pending
    assert risk_try is not None
    fire_pending(world)
    assert world.send()
    assert world.pending is None  # the risk try on the wire is all that is pending (I1)
    actions = world.feed(Due(risk_try.action, risk_try.at))  # a heartbeat restored it
    assert reserves(actions) == []


def test_a_deadline_fired_late_with_a_renewal_on_the_wire_leaves_only_that_pending() -> None:
    world = world_of(warn_before=0)
    renewal_on_the_wire(world)
    world.now = DEADLINE + 1.0  # the loop stalled past the deadline
    assert world.fire_due()
    assert world.hold.state is HoldState.AT_RISK
    assert world.pending is None  # the reserve on the wire decides (I1)


def test_a_renewal_claim_read_back_from_a_store_fires() -> None:
    world = world_of()
    world.now = RENEWAL
    action = "".join(["re", "new"])  # equal to the planned action, not the same object
    assert action is not RENEW
    actions = world.feed(Due(action, RENEWAL))
    assert len(reserves(actions)) == 1


def test_a_warning_claim_read_back_from_a_store_fires_expiring() -> None:
    world = world_of(auto_renew=False)
    world.now = WARNING
    action = "".join(["wa", "rn"])
    assert action is not WARN
    world.feed(Due(action, WARNING))
    assert len(world.emitted(Expiring)) == 1
    assert world.hold.state is HoldState.ACTIVE


def test_a_claim_early_by_less_than_a_second_is_put_back_on_an_exact_clock() -> None:
    world = world_of()  # Rules' resolution is 0: any early claim is early
    world.now = RENEWAL - 0.5
    actions = world.feed(Due("renew", RENEWAL))
    assert actions == [Plan("renew", RENEWAL)]
    assert world.queued == 0


def test_a_claim_early_by_less_than_the_clock_resolution_fires() -> None:
    world = world_of()
    world.rules.resolution = 0.01
    world.now = RENEWAL - 0.005
    actions = world.feed(Due("renew", RENEWAL))
    assert len(reserves(actions)) == 1
    assert world.hold.state is HoldState.RENEWING


def test_a_renewal_claimed_within_the_resolution_but_before_the_floor_is_put_back() -> None:
    world = world_of(renew_before=600)  # its renewal time is past: the floor decides
    world.rules.resolution = 0.01
    assert world.pending == Plan("renew", T0 + 1.0)  # min_renew_interval after its reserve
    world.now = T0 + 0.995
    actions = world.feed(Due("renew", T0 + 1.0))
    assert actions == [Plan("renew", T0 + 1.0)]
    assert world.hold.state is HoldState.ACTIVE


# -- lateness --------------------------------------------------------------------------------


def test_expiring_fired_on_time_is_not_late() -> None:
    world = world_of(auto_renew=False)
    assert world.pending == Plan("warn", WARNING)
    fire_pending(world)
    assert world.emitted(Expiring) == [Emit(Expiring, 0.0)]


def test_expiring_claimed_early_within_the_resolution_is_not_late() -> None:
    world = world_of(auto_renew=False)
    world.rules.resolution = 0.01
    world.now = WARNING - 0.005
    world.feed(Due("warn", WARNING))
    assert world.emitted(Expiring) == [Emit(Expiring, 0.0)]


def test_expiring_lateness_counts_from_its_planned_time() -> None:
    world = world_of(auto_renew=False)
    world.now = WARNING + 2.5  # the loop stalled
    world.fire_due()
    [expiring] = world.emitted(Expiring)
    assert expiring.lateness == pytest.approx(2.5)


def test_expiring_fired_long_after_its_time_reports_all_of_its_lateness() -> None:
    world = World(HoldPolicy(auto_renew=False, renew_jitter=0))  # made at 0: warns at 448
    world.now = 448.0 + 500.0  # the process was suspended for 500 s
    fire_pending(world)
    [expiring] = world.emitted(Expiring)
    assert expiring.lateness == 500.0


def test_a_reserve_sent_long_after_its_plan_reports_all_of_its_lateness() -> None:
    world = World()  # made at 0: the renewal is planned at 418 on the clock
    world.now = 418.0 + 500.0  # the process was suspended for 500 s
    fire_pending(world)
    assert world.send()
    assert world.lateness == 500.0


def test_a_reserve_sent_early_within_the_resolution_is_not_late() -> None:
    world = world_of()
    world.rules.resolution = 0.01
    world.now = RENEWAL - 0.005
    world.feed(Due("renew", RENEWAL))
    assert world.send()
    assert world.lateness == 0.0


def test_a_reserve_sent_a_fraction_of_a_second_late_reports_it() -> None:
    world = world_of()
    world.now = RENEWAL + 0.4
    fire_pending(world)
    assert world.send()
    assert world.lateness == pytest.approx(0.4)


def test_a_renewal_sent_on_time_is_not_late() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.answer()
    [renewed] = world.emitted(Renewed)
    assert renewed.lateness == 0.0


def test_sold_out_makes_the_hold_at_risk_with_an_on_time_event() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.refuse(classify(TicketUnavailable("gone", status=409, method="POST", path="/r")))
    assert world.hold.state is HoldState.AT_RISK
    assert world.emitted(AtRisk) == [Emit(AtRisk, 0.0, {"reason": "sold_out"})]


def test_a_lost_hold_is_reported_on_time() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.refuse(classify(TicketUnavailable("gone", status=409, method="POST", path="/r")))
    fire_pending(world)  # Expiring
    fire_pending(world)  # the risk try, just after the drop
    assert world.send()
    world.refuse(classify(TicketUnavailable("gone", status=409, method="POST", path="/r")))
    assert world.emitted(Lost) == [Emit(Lost, 0.0, {"reason": "sold_out"})]


@pytest.mark.parametrize(
    "error",
    [
        ServerError("oops", retry_after=None, status=500, method="POST", path="/r"),
        TransportError("timed out", may_have_reached_server=False, method="POST", path="/r"),
    ],
    ids=["server-error", "timeout"],
)
def test_a_hold_lost_to_an_error_says_which(error: Exception) -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.refuse(classify(TicketUnavailable("gone", status=409, method="POST", path="/r")))
    fire_pending(world)  # Expiring
    fire_pending(world)  # the risk try, just after the drop
    assert world.send()
    world.refuse(classify(error))
    [lost] = world.emitted(Lost)
    assert lost.fields["reason"] == f"renewal failed: {type(error).__name__}"


def test_a_checkout_is_reported_on_time() -> None:
    world = world_of()
    world.feed(CheckoutStarted())
    world.feed(CheckoutSucceeded(ORDER))
    assert world.emitted(CheckedOut) == [Emit(CheckedOut, 0.0, {"order": ORDER})]


def test_a_failed_renewal_is_reported_on_time() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    error = ServerError("oops", retry_after=None, status=500, method="POST", path="/r")
    world.refuse(classify(error))
    assert world.emitted(RenewalFailed) == [
        Emit(RenewalFailed, 0.0, {"error": error, "will_retry": True})
    ]


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


class _LongestBackoff(random.Random):
    """Draws every backoff at its ceiling, so a test can read the ceiling off the plan."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_each_failed_try_in_a_row_doubles_the_backoff_ceiling() -> None:
    world = world_of()
    world.rules.retry = RetryPolicy(backoff_base=2.0)
    world.rules.rng = _LongestBackoff()
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
    world.rules.rng = _LongestBackoff()
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
    world.rules.rng = _LongestBackoff()  # a 0.25 s backoff would still fit
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


# -- checkout ----------------------------------------------------------------------------------


def test_renewals_pause_during_a_checkout() -> None:
    world = world_of()
    world.now = T0 + 100.0
    world.feed(CheckoutStarted())
    assert world.pending == Plan("warn", WARNING)  # then the drop: no renewal is planned


def test_renewals_resume_after_a_failed_checkout() -> None:
    world = world_of()
    world.now = T0 + 100.0
    world.feed(CheckoutStarted())
    world.feed(CheckoutFailed())
    assert world.pending == Plan("renew", RENEWAL)


def test_a_checkout_with_time_to_spare_does_not_renew_first() -> None:
    world = world_of()
    world.now = T0 + 100.0
    actions = world.feed(CheckoutStarted())
    assert reserves(actions) == []
    assert world.hold.state is HoldState.ACTIVE


def test_a_checkout_with_exactly_renew_before_left_does_not_renew_first() -> None:
    world = world_of()
    world.now = RENEWAL
    actions = world.feed(CheckoutStarted())
    assert reserves(actions) == []


def test_checkout_on_a_hold_at_risk_renews_it_first() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.refuse(classify(TicketUnavailable("gone", status=409, method="POST", path="/r")))
    actions = world.feed(CheckoutStarted())  # still renew_before left: only the risk counts
    assert reserves(actions) == [Reserve(first=True)]


def test_an_ordered_hold_leaves_no_lingering_unit() -> None:
    world = world_of()
    world.feed(CheckoutStarted())
    world.feed(CheckoutSucceeded(ORDER))
    assert world.hold.state is HoldState.ORDERED
    assert world.lingered == []  # its unit is in the order


def test_checkout_close_to_the_deadline_renews_the_hold_first() -> None:
    world = world_of()
    world.now = DEADLINE - 59.0  # the renewal, due 1 s ago, waits behind a stalled loop
    actions = world.feed(CheckoutStarted())
    assert reserves(actions) == [Reserve(first=True)]
    assert world.hold.state is HoldState.RENEWING


# -- a shared store's records --------------------------------------------------------------


def test_a_renewal_orphaned_by_a_dead_worker_leaves_the_hold_active() -> None:
    world = world_of()
    world.hold.state = HoldState.RENEWING  # as a shared record says; nothing on the wire here
    orphaned(world.hold)
    assert world.hold.state is HoldState.ACTIVE


def test_a_hold_ended_by_another_worker_ends_here_too() -> None:
    world = world_of()
    ended_elsewhere(world.hold, HoldState.LOST)
    assert world.hold.state is HoldState.LOST
    assert world.hold.done


def test_a_hold_ended_here_keeps_its_own_end() -> None:
    world = world_of()
    world.feed(Remove())
    ended_elsewhere(world.hold, HoldState.LOST)
    assert world.hold.state is HoldState.RELEASED


def test_a_hold_at_risk_is_not_orphaned() -> None:
    world = world_of()
    world.hold.state = HoldState.AT_RISK
    orphaned(world.hold)
    assert world.hold.state is HoldState.AT_RISK

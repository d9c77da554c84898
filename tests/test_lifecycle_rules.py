"""Rules of the hold lifecycle that the mutation run (docs/mutation-testing.md) found
no test pinning: claims, lateness, checkout and shared records. Each test here kills
at least one mutant that survived the others; the renewal and retry rules are in
``tests/test_lifecycle_renewal_rules.py``.

Plain numbers, no event loop, one hold in ``tests/lifecycle_world.World`` (made at
``T0`` by ``tests/lifecycle_rules_kit``); each test asserts what ``step()`` returns
(plans, reserves, events) and the hold's state.
"""

from __future__ import annotations

import pytest
from lifecycle_rules_kit import (
    DEADLINE,
    ORDER,
    RENEWAL,
    T0,
    WARNING,
    fire_pending,
    renewal_on_the_wire,
    reserves,
    world_of,
)
from lifecycle_world import World

from openticket_async import HoldPolicy, HoldState, ServerError, TicketUnavailable, TransportError
from openticket_async._events import AtRisk, CheckedOut, Expiring, Lost, RenewalFailed, Renewed
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
)
from openticket_async._planning import RENEW, WARN

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


def test_a_renewal_claimed_within_the_resolution_of_the_floor_goes_out() -> None:
    world = world_of(renew_before=600)  # its renewal time is past: the floor decides
    world.rules.resolution = 0.01
    assert world.pending == Plan("renew", T0 + 1.0)  # min_renew_interval after its reserve
    world.now = T0 + 0.995  # put back, the same claim would come again at this instant
    actions = world.feed(Due("renew", T0 + 1.0))
    assert reserves(actions) == [Reserve()]
    assert not_before(world.hold, world.rules) == T0 + 1.0  # the worker waits for the floor


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

"""The renewal's fast path (``_shortcuts``) decides as the lifecycle's table does.

Every input a ``lifecycle_world.World`` feeds to ``step`` also goes through the
matching shortcut on a twin of the hold, which must either decline and leave the
twin untouched, or leave it exactly as ``step`` left the hold and imply the very
actions ``step`` returned (``World.feed``). So every table, rule and hypothesis
test of ``tests/test_lifecycle*.py`` checks the shortcuts too; the tests here
make sure both shortcuts are really taken, and reach the cases where the common
case ends.
"""

from __future__ import annotations

from lifecycle_rules_kit import RENEWAL, fire_pending, renewal_on_the_wire, world_of
from lifecycle_world import SHORTCUTS_TAKEN, World
from test_lifecycle import renewing, run_until, sold_out, timed_out

from openticket_async import HoldPolicy, HoldState
from openticket_async._events import Expiring, Renewed
from openticket_async._lifecycle import CheckoutFailed, CheckoutStarted, Due


def taken(name: str) -> int:
    return SHORTCUTS_TAKEN[name]


def test_a_plain_renewal_takes_both_shortcuts() -> None:
    world = world_of()
    due, answered = taken("renew_due"), taken("renewed")
    world.now = RENEWAL + 0.5  # claimed a little late, as a busy loop does
    world.feed(Due("renew", RENEWAL))
    assert world.send()
    world.answer()
    assert (taken("renew_due"), taken("renewed")) == (due + 1, answered + 1)
    assert world.hold.state is HoldState.ACTIVE
    assert len(world.emitted(Renewed)) == 1


def test_an_answer_after_expiring_fired_is_taken_and_clears_the_warning() -> None:
    world = World(HoldPolicy(max_hold=None, renew_jitter=0))
    renewing(world)  # on the wire, no answer yet: Expiring fires as the safety net
    run_until(world, world.hold.reservation.deadline - 20)  # type: ignore[union-attr]
    assert world.hold._warned
    assert len(world.emitted(Expiring)) == 1
    answered = taken("renewed")
    world.answer()
    assert taken("renewed") == answered + 1
    assert not world.hold._warned  # the fresh reservation may warn again


def test_a_renewal_after_a_failed_try_is_left_to_the_table() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.refuse(timed_out())  # the retry is planned in the hold's rare fields
    assert world.hold._more is not None
    declined = taken("renew_due declined")
    fire_pending(world)
    assert taken("renew_due declined") == declined + 1
    assert world.hold.state is HoldState.RENEWING
    assert world.send()
    declined = taken("renewed declined")
    world.answer()
    assert taken("renewed declined") == declined + 1
    assert world.hold.state is HoldState.ACTIVE
    assert world.hold._more is None


def test_an_answer_to_an_at_risk_hold_is_left_to_the_table() -> None:
    world = world_of()
    renewal_on_the_wire(world)
    world.refuse(sold_out())
    assert world.hold.state is HoldState.AT_RISK
    run_until(world, world.hold.reservation.deadline + 5)  # type: ignore[union-attr]
    assert world.on_wire is not None  # the risk try
    declined = taken("renewed declined")
    world.answer()
    assert taken("renewed declined") == declined + 1
    assert world.hold.state is HoldState.ACTIVE


def test_a_renewal_due_during_a_checkout_is_left_to_the_table() -> None:
    world = world_of()
    world.feed(CheckoutStarted())
    world.now = RENEWAL
    declined = taken("renew_due declined")
    world.feed(Due("renew", RENEWAL))
    assert taken("renew_due declined") == declined + 1
    assert world.queued == 0  # paused: no reserve while the order is made
    world.feed(CheckoutFailed())
    run_until(world, RENEWAL + 1)
    assert world.on_wire is not None


def test_a_renewal_due_before_the_reserve_floor_is_left_to_the_table() -> None:
    # a reserve went out since the plan was made (one this module never saw): the
    # table plans the renewal for the floor, and the shortcut must not send it now
    world = world_of(min_renew_interval=0.5)
    world.now = RENEWAL
    world.hold._last_sent = RENEWAL - 0.25
    declined = taken("renew_due declined")
    world.feed(Due("renew", RENEWAL))
    assert taken("renew_due declined") == declined + 1
    assert world.queued == 0
    assert world.pending is not None
    assert world.pending.at == RENEWAL + 0.25


def test_a_stale_or_early_claim_is_left_to_the_table() -> None:
    world = world_of()
    declined = taken("renew_due declined")
    world.now = RENEWAL - 10
    world.feed(Due("renew", RENEWAL))  # claimed ten seconds early: put back
    world.now = RENEWAL
    world.feed(Due("renew", RENEWAL - 30))  # a plan replaced since: never fired
    assert taken("renew_due declined") == declined + 2
    assert world.queued == 0
    fire_pending(world)
    assert world.queued == 1


def test_a_claim_of_a_later_plan_than_the_holds_own_is_left_to_the_table() -> None:
    # a plan replaced since by an earlier one: its claim is stale however late it comes
    world = world_of()
    declined = taken("renew_due declined")
    world.now = RENEWAL + 30
    world.feed(Due("renew", RENEWAL + 30))
    assert taken("renew_due declined") == declined + 1
    assert world.queued == 0


def test_an_at_risk_record_read_back_is_left_to_the_table() -> None:
    # a shared store may hand back an AT_RISK hold with its renewal due and none of
    # the rare fields set (its risk try spent, nothing on the wire): not the common case
    world = world_of()
    world.hold.state = HoldState.AT_RISK
    world.now = RENEWAL
    declined = taken("renew_due declined")
    world.feed(Due("renew", RENEWAL))
    assert taken("renew_due declined") == declined + 1
    assert world.hold.state is HoldState.AT_RISK

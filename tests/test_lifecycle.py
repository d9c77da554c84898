"""The pure hold lifecycle (``_lifecycle``): the table, its invariants, its rules.

Plain numbers, no event loop: each test drives one hold through
``tests/lifecycle_world.World``, which carries out actions as the manager does,
and checks the invariants I1-I6 of the module after every step.
"""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from lifecycle_world import TTL, World, reservation

from openticket_async import (
    HoldPolicy,
    HoldState,
    Order,
    RateLimited,
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
    Released,
    RenewalFailed,
    Renewed,
)
from openticket_async._exceptions import DecodeError
from openticket_async._lifecycle import (
    INPUTS,
    TABLE,
    Answered,
    CheckoutFailed,
    CheckoutStarted,
    CheckoutSucceeded,
    ClockJumped,
    Close,
    Due,
    Failure,
    Input,
    Refused,
    Remove,
    classify,
)

ORDER = Order(guid="33333333-3333-4333-8333-333333333333", status="paid", tickets=())


def sold_out() -> Failure:
    return classify(TicketUnavailable("sold out", status=409, method="GET", path="/r"))


def rate_limited(retry_after: float | None) -> Failure:
    return classify(
        RateLimited("slow down", retry_after=retry_after, status=429, method="GET", path="/r")
    )


def server_error() -> Failure:
    return classify(ServerError("oops", retry_after=None, status=500, method="GET", path="/r"))


def timed_out() -> Failure:
    error = TransportError("timed out", may_have_reached_server=True, method="GET", path="/r")
    return classify(error)


def undecodable() -> Failure:
    return classify(DecodeError("bad body", status=200, method="GET", path="/r"))


def unexpected() -> Failure:
    return classify(RuntimeError("the client is closed"))


FAILURES = [sold_out, lambda: rate_limited(86400.0), server_error, timed_out, undecodable,
            unexpected]  # fmt: skip


def run_until(world: World, t: float) -> None:
    """Advance to ``t``, firing every due action and sending every queued reserve."""
    while True:
        pending = world.pending
        if world.queued:
            world.send()
        elif pending is not None and pending.at <= t:
            world.now = max(world.now, pending.at)
            world.fire_due()
        else:
            break
        world.check()
    world.now = max(world.now, t)


def renewing(world: World) -> None:
    """Bring the hold to RENEWING with its reserve on the wire."""
    assert world.pending is not None
    assert world.pending.action == "renew"
    run_until(world, world.pending.at)
    assert world.on_wire is not None


def at_risk(world: World) -> None:
    renewing(world)
    world.refuse(sold_out())
    world.check()
    assert world.hold.state is HoldState.AT_RISK


def inputs_for(world: World) -> list[Input]:
    pending = world.pending
    due = [Due(pending.action, pending.at)] if pending is not None else []
    sent = world.on_wire if world.on_wire is not None else world.now
    return [
        *due,
        Answered(reservation(99, sent + TTL), sent),
        *(Refused(f(), sent) for f in FAILURES),
        CheckoutStarted(),
        CheckoutSucceeded(ORDER),
        CheckoutFailed(),
        Remove(),
        Close(),
        ClockJumped(),
    ]


# -- the table ---------------------------------------------------------------------------


def test_every_state_and_input_pair_has_a_transition() -> None:
    assert set(TABLE) == set(HoldState)
    for state, row in TABLE.items():
        assert set(row) == set(INPUTS), state


@pytest.mark.parametrize("reach", [lambda w: None, renewing, at_risk], ids=["active", "renewing",
                                                                          "at_risk"])
@pytest.mark.parametrize("index", range(14))
def test_no_input_leaves_a_live_hold_without_pending_work(reach: object, index: int) -> None:
    world = World()
    reach(world)  # type: ignore[operator]
    candidates = inputs_for(world)
    assert len(candidates) == 14  # every live state has its pending action to come due
    inp = candidates[index]
    if isinstance(inp, Answered | Refused) and world.on_wire is None:
        return  # no reserve on the wire: the world cannot produce this answer
    if isinstance(inp, Answered | Refused):
        world.on_wire = None
    world.feed(inp)
    hold = world.hold
    if not hold.done:
        assert hold._action is not None or hold._wire  # I1
    world.check()


@pytest.mark.parametrize("end", [Remove(), Close(), CheckoutSucceeded(ORDER)])
def test_a_terminal_hold_ignores_every_input_but_accounts_for_late_units(end: Input) -> None:
    world = World()
    renewing(world)
    world.feed(end)
    state = world.hold.state
    assert world.hold.done
    sent = world.on_wire
    assert sent is not None
    late = reservation(7, sent + TTL)
    assert [type(a).__name__ for a in world.feed(Answered(late, sent))] == ["Linger"]
    assert [type(a).__name__ for a in world.feed(Refused(timed_out(), sent))] == ["Uncertain"]
    for inp in (Due("renew", 0.0), CheckoutFailed(), Remove(), Close(), ClockJumped()):
        assert world.feed(inp) == []
    assert world.hold.state is state
    world.on_wire = None
    world.check()


# -- the rules, one per test (the regression cases of the lifecycle issue) -------------------


def test_a_checkout_stuck_past_the_drop_then_failing_leaves_the_hold_with_an_exit() -> None:
    world = World()
    world.feed(CheckoutStarted())  # nothing to renew yet: 478 s left
    assert world.queued == 0
    run_until(world, TTL + 10)  # the order call hangs past renewal time and the drop
    assert world.hold.state in (HoldState.AT_RISK, HoldState.RENEWING, HoldState.ACTIVE)
    assert world.emitted(AtRisk)
    world.feed(CheckoutFailed())
    run_until(world, world.now)
    world.check()
    if world.on_wire is not None:
        world.refuse(sold_out())
    world.check()
    assert world.hold.state is HoldState.LOST or world.hold._action is not None


def test_a_server_expiry_in_the_past_cannot_start_a_renewal_storm() -> None:
    world = World()
    for _ in range(50):
        run_until(world, world.now + 1.0)
        if world.on_wire is not None:
            world.answer(server_ttl=-600.0)  # ten minutes in the past
        world.check()
    # one reserve at most per renewal window: the past expiry ran on the local TTL
    assert len(world.sent) <= 1


def test_a_long_retry_after_never_parks_the_last_try_past_the_drop() -> None:
    world = World(HoldPolicy(renew_before=20, warn_before=10, renew_jitter=0, max_hold=None))
    renewing(world)
    world.refuse(rate_limited(86400.0))  # capped at 30 s: still past the deadline
    world.check()
    assert world.hold.state is HoldState.AT_RISK
    assert world.emitted(AtRisk)
    drop = world.hold.reservation.deadline + world.policy.safety_margin  # type: ignore[union-attr]
    run_until(world, drop - 1)  # Expiring comes first: no renewal succeeded
    assert len(world.emitted(Expiring)) == 1
    assert world.pending is not None
    assert world.pending.action == "renew"
    assert world.pending.at == pytest.approx(drop)


def test_the_deadline_with_a_renewal_on_the_wire_emits_at_risk() -> None:
    world = World()
    renewing(world)
    run_until(world, world.hold.reservation.deadline)  # type: ignore[union-attr]
    assert world.hold.state is HoldState.AT_RISK
    assert [e.fields["reason"] for e in world.emitted(AtRisk)] == [
        "renewal in flight at the deadline"
    ]
    world.refuse(server_error())  # it still gets its one try after the drop
    assert world.pending is not None
    assert world.pending.action == "renew"
    world.check()


def test_checkout_after_a_queued_renewal_sends_one_reserve_not_two() -> None:
    world = World()
    pending = world.pending
    assert pending is not None
    world.now = pending.at
    world.fire_due()  # the renewal is queued behind other carts' renewals
    world.feed(CheckoutStarted())  # checkout wants it renewed first
    assert world.queued == 1
    while world.queued:
        world.send()
    assert len(world.sent) == 1
    world.check()


def test_renewed_lateness_counts_from_the_planned_time_loop_stalls_included() -> None:
    world = World()
    pending = world.pending
    assert pending is not None
    world.now = pending.at + 7.5  # the loop stalled for 7.5 s
    world.fire_due()
    world.send()
    world.answer()
    assert world.emitted(Renewed)[0].lateness == pytest.approx(7.5)


def test_expiring_fires_with_the_defaults_when_the_renewal_has_not_succeeded() -> None:
    world = World(HoldPolicy(max_hold=None))
    renewing(world)  # on the wire, no answer yet
    run_until(world, world.hold.reservation.deadline - 20)  # type: ignore[union-attr]
    assert len(world.emitted(Expiring)) == 1


def test_expiring_fires_once_and_the_hold_expires_when_auto_renew_is_off() -> None:
    world = World(HoldPolicy(auto_renew=False, renew_jitter=0))
    run_until(world, TTL + 60)
    assert len(world.emitted(Expiring)) == 1
    assert [e.fields["reason"] for e in world.emitted(Expired)] == ["not_renewed"]


def test_a_renewed_hold_fires_no_expiring() -> None:
    world = World()
    for _ in range(5):
        renewing(world)
        world.answer()
    assert world.emitted(Expiring) == []
    assert len(world.emitted(Renewed)) == 5


def test_an_undecodable_answer_after_the_server_acted_counts_an_uncertain_unit() -> None:
    world = World()
    renewing(world)
    world.refuse(undecodable())
    assert world.uncertain == 1


def test_an_unexpected_error_fails_the_attempt_and_retries() -> None:
    world = World()
    renewing(world)
    world.refuse(unexpected())
    failed = world.emitted(RenewalFailed)
    assert len(failed) == 1
    assert isinstance(failed[0].fields["error"], RuntimeError)
    assert world.pending is not None
    assert world.pending.action == "renew"
    assert world.hold.state is HoldState.ACTIVE


def test_sold_out_makes_the_hold_at_risk_then_lost_after_one_try_past_the_drop() -> None:
    world = World()
    at_risk(world)
    run_until(world, TTL + 10)  # past the drop: the one more try is on the wire
    world.refuse(sold_out())
    assert world.hold.state is HoldState.LOST
    assert [e.fields["reason"] for e in world.emitted(Lost)] == ["sold_out"]


def test_a_checkout_refused_before_the_drop_keeps_an_at_risk_hold_for_its_try_after() -> None:
    world = World()
    at_risk(world)  # sold out while the old reservation holds the last unit
    world.now += 1.0  # past the reserve floor
    world.feed(CheckoutStarted())  # checkout renews it first: refused again, before the drop
    world.send()
    world.refuse(sold_out())
    world.feed(CheckoutFailed())
    world.check()
    assert world.hold.state is HoldState.AT_RISK
    assert world.emitted(Lost) == []
    drop = world.hold.reservation.deadline  # type: ignore[union-attr]
    run_until(world, drop - 1)  # Expiring may come first
    assert world.pending is not None
    assert world.pending.action == "renew"
    assert world.pending.at >= drop  # its one more try still comes just after the drop


def test_a_stale_claim_of_a_replaced_action_is_not_fired() -> None:
    world = World()
    renewing(world)
    old_due = world.plans[0][0]  # the renew the heartbeat resurrects
    world.answer()
    actions = world.feed(Due(old_due.action, old_due.at))
    assert [type(a).__name__ for a in actions] == ["Plan"]
    assert world.queued == 0


def test_a_claim_that_comes_early_is_put_back() -> None:
    world = World()
    pending = world.pending
    assert pending is not None
    actions = world.feed(Due(pending.action, pending.at))  # now is 0, due at ~416
    assert [type(a).__name__ for a in actions] == ["Plan"]
    assert world.queued == 0


def test_release_and_checkout_end_with_exactly_one_terminal_event() -> None:
    for end, kind in ((Remove(), Released), (CheckoutSucceeded(ORDER), CheckedOut)):
        world = World()
        world.feed(end)
        world.feed(end)
        assert len(world.emitted(kind)) == 1
        world.check()


# -- random sequences ---------------------------------------------------------------------

settings.register_profile(
    "ci", max_examples=10_000, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
settings.register_profile(
    "long", max_examples=200_000, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
# a mutation run (docs/mutation-testing.md) runs the tests once per mutant: few examples,
# the same ones each time, and no database replaying what an earlier mutant broke
settings.register_profile(
    "mutation", max_examples=150, stateful_step_count=25, deadline=None, derandomize=True,
    database=None, suppress_health_check=[HealthCheck.too_slow],
)  # fmt: skip
PROFILE = os.environ.get("LIFECYCLE_PROFILE", "ci")

KINDS = st.sampled_from(
    ["sold_out", "rate_limited", "server", "timed_out", "undecodable", "failed", "unexpected"]
)


class LifecycleMachine(RuleBasedStateMachine):
    """Random inputs in random order; the invariants hold after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.world = World(HoldPolicy(max_hold=None, renew_jitter=3.0))

    @rule(dt=st.floats(0, 600))
    def time_passes(self, dt: float) -> None:
        world = self.world
        target = world.now + dt
        for _ in range(200):  # I4 bounds how often anything fires
            pending = world.pending
            if pending is None or pending.at > target or world.hold.done:
                break
            world.now = max(world.now, pending.at)
            world.fire_due()
        world.now = max(world.now, target)

    @rule(dt=st.floats(-120, 120))
    def clock_jumps(self, dt: float) -> None:
        self.world.now += dt
        self.world.feed(ClockJumped())

    @rule()
    def worker_sends(self) -> None:
        self.world.send()

    @precondition(lambda self: self.world.on_wire is not None)
    @rule(server_ttl=st.none() | st.floats(-86400, 900))
    def server_answers(self, server_ttl: float | None) -> None:
        self.world.answer(server_ttl)

    @precondition(lambda self: self.world.on_wire is not None)
    @rule(kind=KINDS, retry_after=st.none() | st.floats(0, 86400), uncertain=st.booleans())
    def server_refuses(self, kind: str, retry_after: float | None, uncertain: bool) -> None:
        self.world.refuse(Failure(kind, RuntimeError(kind), retry_after, uncertain))

    @rule()
    def checkout_starts(self) -> None:
        self.world.feed(CheckoutStarted())

    @rule()
    def checkout_fails(self) -> None:
        self.world.feed(CheckoutFailed())

    @rule()
    def checkout_succeeds(self) -> None:
        self.world.feed(CheckoutSucceeded(ORDER))

    @rule()
    def removed(self) -> None:
        self.world.feed(Remove())

    @invariant()
    def invariants_hold(self) -> None:
        self.world.check()

    @invariant()
    def one_new_reservation_per_renewal_window(self) -> None:
        world = self.world
        policy = world.policy
        # a fresh reservation runs at least min_server_ttl (a shorter server expiry is
        # distrusted), and is renewed renew_before (+ jitter) before its deadline
        window = min(policy.min_server_ttl, TTL) - policy.safety_margin
        window -= policy.renew_before + policy.renew_jitter
        starts = [0.0, *world.answered]
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(gap >= window - 1e-6 for gap in gaps), gaps


TestLifecycleMachine = pytest.mark.timeout(0 if PROFILE == "long" else 600)(
    LifecycleMachine.TestCase
)
TestLifecycleMachine.settings = settings.get_profile(PROFILE)

"""A live hold's one pending action: which, and when (the lifecycle's planning half).

The lifecycle (``_lifecycle``) keeps every live hold to exactly one pending
action or one reserve on the wire (its I1). :func:`plan` picks that action: the
earliest of ``warn`` (``Expiring``, once per reservation), ``renew`` (when the
hold may be renewed, nothing is on the wire and no checkout pauses it; never
before the reserve floor, I4) and ``drop`` (the local deadline). Past the local
deadline only the *risk try* is left: one ``renew`` just after the drop, when
the old unit is surely back in stock (I5). The times come from ``_planning``;
the choice, and the reasons a hold may not be renewed, live here, so that the
transitions in ``_lifecycle`` read as the table at its head. Pure: the caller
passes "now".
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from ._config import HoldPolicy, RetryPolicy
from ._hold import Hold, HoldState
from ._planning import DROP, RENEW, WARN, drop_time, renew_at
from ._steps import Action, Plan

__all__ = ["Rules", "not_before", "not_renewable", "plan", "replan"]

_AT_RISK = HoldState.AT_RISK


@attrs.define
class Rules:
    """What the lifecycle needs to decide: the policies, and two readings it is given.

    ``latency_p99`` is the observed reserve latency the renewal lead grows with
    (the manager keeps it current). ``touched_at`` tells when a cart was last used
    (None for a cart this process does not know). ``rng`` draws jitter and backoff.
    ``resolution`` is how early a claim may come and still count as due.
    """

    policy: HoldPolicy
    retry: RetryPolicy
    touched_at: Callable[[str], float | None] = lambda _cart_id: None
    latency_p99: float = 0.0
    rng: random.Random | None = None
    resolution: float = 0.0


def not_renewable(hold: Hold, now: float, rules: Rules) -> str | None:
    """None if ``hold`` may be renewed at ``now``, else why not (its Expired reason)."""
    policy = rules.policy
    if not policy.auto_renew:
        return "not_renewed"
    if policy.max_hold is not None and now - hold.created_at >= policy.max_hold:
        return "max_hold"
    if policy.idle_timeout is not None:
        touched = rules.touched_at(hold.cart_id)
        if touched is not None and now - touched >= policy.idle_timeout:
            return "idle"
    return None


def plan(hold: Hold, now: float, rules: Rules) -> list[Action]:
    """The hold's one next pending action, as a list of one :class:`Plan`.

    The list is empty while a reserve is on the wire past the deadline: that
    reserve is then the pending work (I1). Records the plan in ``hold._action``
    and ``hold._due``, which is how a stale claim is told from a live one.
    """
    if not replan(hold, now, rules):
        return []
    action = hold._action
    assert action is not None
    return [Plan(action, hold._due)]


def replan(hold: Hold, now: float, rules: Rules) -> bool:
    """:func:`plan` without the :class:`Plan` value: records the plan in
    ``hold._action`` and ``hold._due``; False (and ``_action`` None) when the
    reserve on the wire is the pending work. For the lifecycle's renewal fast path.
    """
    reservation = hold.reservation
    assert reservation is not None  # a live hold always has one
    policy = rules.policy
    deadline = reservation.deadline - policy.safety_margin  # local_deadline, inlined
    floor = hold._last_sent + policy.min_renew_interval  # not_before, inlined
    wire = hold._wire
    more = hold._more  # the rare fields (risk, paused, retry): None when all are unset
    risk = more is not None and more.risk
    if wire and (risk or (hold.state is _AT_RISK and now >= deadline)):
        hold._action = None
        return False
    if risk:
        # the deadline is passed or will be: only the try after the drop is left
        action, at = RENEW, drop_time(reservation, policy)
        if floor > at:
            at = floor
    else:
        action, at = DROP, deadline
        if (
            not wire
            and (more is None or not more.paused)
            and not_renewable(hold, now, rules) is None
        ):
            retry_at = 0.0 if more is None else more.retry_at
            renew = retry_at or renew_at(reservation, policy, rules.latency_p99, rules.rng)
            if renew < floor:
                renew = floor
            if renew < at:
                action, at = RENEW, renew
    warn = deadline - policy.warn_before  # warn_at, inlined
    if not hold._warned and warn < at:
        action, at = WARN, warn
    hold._action, hold._due = action, at
    return True


def not_before(hold: Hold, rules: Rules) -> float:
    """The earliest time ``hold``'s queued reserve may go out (I4's floor).

    The renewal worker waits until then: a reserve queued by a checkout just
    after a failed try, or before the clock jumped back, keeps the floor too.
    """
    return hold._last_sent + rules.policy.min_renew_interval

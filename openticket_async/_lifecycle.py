"""The hold lifecycle: one pure state machine for every change of a hold's state.

Theory of operation
-------------------
A hold lives through three live states and ends in one of four terminal ones.
Everything that can happen to it is an *input*; :func:`step` takes the hold, the
input and "now", updates the hold's lifecycle fields and returns the *actions*
its caller must carry out. Nothing here awaits, reads a clock or touches the
network: the manager, the cart and the stores execute actions and feed back
what came of them, and none of them sets a hold's state itself. This is the
sans-I/O split of the protocol modules, applied to the hold.

Inputs (:data:`INPUTS`): an action came ``Due``; a renewal reserve ``Answered``
or was ``Refused`` (sold out, rate limited with its ``Retry-After``, a server
error, a timeout, an undecodable answer, an unexpected exception); a checkout
started, succeeded or failed (``CheckoutStarted``, ``CheckoutSucceeded``,
``CheckoutFailed``; a cancelled checkout has failed); the application removed
the hold (``Remove``) or closed the manager (``Close``); the clock jumped
(``ClockJumped``). A deadline reached with a reserve still on the wire is the
``Due(DROP)`` of a hold whose reserve is in flight.

Actions: :class:`Reserve` (send one reserve for this hold now), :class:`Plan`
(make ``action`` at ``at`` the hold's one pending action, replacing any other),
:class:`Emit` (tell the application), :class:`Linger` (a unit the server keeps
until its drop), :class:`Uncertain` (a unit the server may hold that we never
saw), :class:`End` (forget the hold: it reached a terminal state).

A live hold always has one *pending action*, chosen by :func:`plan` (in
``_hold_plan``, the planning half of this machine, with its ``Rules``) as the
earliest of: ``warn`` (``Expiring``, if not fired for this reservation),
``renew`` (when renewal is allowed and nothing is on the wire), ``drop`` (the
local deadline). Past the local deadline only the *risk try* remains: one last
``renew`` just after the drop, when the old unit is surely back in stock.

The table (live states; terminal states ignore every input, except that a late
answer's unit lingers and an uncertain one is counted)::

    state      input               next state   actions
    ---------  ------------------  -----------  ------------------------------------
    ACTIVE     Due(warn)           ACTIVE       Emit(Expiring), Plan
               Due(renew)          RENEWING     Reserve, Plan(safety net)
                 .. not renewable  ACTIVE       Plan (it will expire at drop)
                 .. paused         ACTIVE       Plan (no renew while checking out)
                 .. under floor    ACTIVE       Plan(renew at last send + floor)
               Due(drop)           EXPIRED      Linger, Emit(Expired), End
                 .. renewable      AT_RISK      Emit(AtRisk), Plan(risk try)
               Refused             ACTIVE       Emit(RenewalFailed), Plan(retry)
                 .. cannot fit     AT_RISK      Emit(RenewalFailed, AtRisk), Plan(risk try)
    RENEWING   Answered            ACTIVE       Linger(old), Emit(Renewed), Plan
               Refused             as ACTIVE    (see ACTIVE/Refused)
               Due(warn)           RENEWING     Emit(Expiring), Plan
               Due(drop)           AT_RISK      Emit(AtRisk) (the reserve on the wire is pending)
    AT_RISK    Due(renew)          AT_RISK      Reserve (the risk try)
               Answered            ACTIVE       Linger(old), Emit(Renewed), Plan
               Refused (risk try)  LOST         Linger, Emit(Lost), End
                 .. before drop    AT_RISK      Emit(RenewalFailed), Plan(risk try)
    any live   CheckoutStarted     same         Reserve if it needs renewing first, Plan
               CheckoutSucceeded   ORDERED      Emit(CheckedOut), End
               CheckoutFailed      same         Plan (a passed deadline then fires at once)
               Remove, Close       RELEASED     Linger, Emit(Released), End
               ClockJumped         same         Plan

Invariants
----------
Each is checked after every step of the tests (``tests/test_lifecycle*.py``).

- **I1** A live hold has exactly one pending action or exactly one reserve on the
  wire (queued or sent): ``hold._action is not None or hold._wire``. Never two
  reserves: a :class:`Reserve` is only returned while ``_wire`` is clear.
- **I2** Every live state has an exit reached within the TTL plus the policy's
  bounds: the pending action is never later than the risk try (the drop plus
  ``min_renew_interval`` at most), and the reserve on the wire ends in
  ``Answered`` or ``Refused`` within the client's timeouts.
- **I3** Every hold ends in exactly one terminal event (``End`` comes with its
  event and a terminal state ignores every later input), and each change the
  application must know of emits its event, ``AtRisk`` included.
- **I4** At most one new reservation per hold per renewal window, and never more
  than one reserve per ``min_renew_interval`` whatever the server answers: a
  reserve is sent only when ``now - _last_sent >= min_renew_interval``, and a
  fresh reservation's renewal is due no sooner than that floor after it was sent.
  A storm is impossible, not merely unlikely.
- **I5** No try is planned past the drop; a wait that would pass the local
  deadline makes the hold ``AT_RISK`` with its event, and its last try is just
  after the drop, never later (a ``Retry-After`` of a day included).
- **I6** Every unit the server may hold is a live hold's reservation or was
  handed to the caller as :class:`Linger` or :class:`Uncertain`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from ._events import (
    AtRisk,
    CheckedOut,
    Expired,
    Expiring,
    Lost,
    Released,
    RenewalFailed,
    Renewed,
)
from ._hold import TERMINAL_STATES, Hold, HoldState
from ._hold_plan import Rules, not_before, not_renewable, plan
from ._planning import RENEW, WARN, local_deadline, retry_fits
from ._steps import (
    INPUTS,
    Action,
    Answered,
    CheckoutFailed,
    CheckoutStarted,
    CheckoutSucceeded,
    ClockJumped,
    Close,
    Due,
    Emit,
    End,
    Failure,
    Input,
    Linger,
    Plan,
    Refused,
    Remove,
    Reserve,
    Uncertain,
    classify,
)

__all__ = [
    "INPUTS",
    "TABLE",
    "Answered",
    "CheckoutFailed",
    "CheckoutStarted",
    "CheckoutSucceeded",
    "ClockJumped",
    "Close",
    "Due",
    "Emit",
    "End",
    "Failure",
    "Action",
    "Input",
    "Linger",
    "Plan",
    "Refused",
    "Remove",
    "Reserve",
    "Rules",
    "SAME_DUE",
    "Uncertain",
    "WIRE_IDLE",
    "classify",
    "disowned",
    "not_before",
    "ended_elsewhere",
    "orphaned",
    "plan",
    "reserve_now",
    "sending",
    "step",
]

_ACTIVE, _RENEWING, _AT_RISK = HoldState.ACTIVE, HoldState.RENEWING, HoldState.AT_RISK
_TERMINAL_STATES = TERMINAL_STATES


#: Due times that differ by less than this are the same plan (a shared store
#: converts them to wall time and back, which may change the last digits).
SAME_DUE = 1e-3

# Actions without a per-hold value are shared: a release or an end allocates only
# what differs (its list, its Linger).
_RESERVE = Reserve()
_RESERVE_FIRST = Reserve(first=True)
_END_FROM = {state: End(state) for state in (_ACTIVE, _RENEWING, _AT_RISK)}
_RELEASED = Emit(Released)


def _reason(failure: Failure) -> str:
    if failure.kind == "sold_out":
        return "sold_out"
    return f"renewal failed: {type(failure.error).__name__}"


def sending(hold: Hold, now: float) -> float | None:
    """Called just before a queued reserve goes out: its lateness, or None to skip it.

    A reserve queued by one path and made unnecessary by another (checkout
    renewed first, the hold ended) is not sent: this keeps I1's "one reserve on
    the wire" and I4. The lateness is measured from the time the reserve was
    planned for, so a stalled loop or a long renewal queue shows in it.
    """
    if hold._wire != _QUEUED or hold.state in _TERMINAL_STATES:
        return None
    hold._wire = _SENT
    hold._last_sent = now
    late = now - hold._planned
    return late if late > 0.0 else 0.0


#: ``Hold._wire``: no renewal reserve, one queued, one sent.
WIRE_IDLE, _QUEUED, _SENT = 0, 1, 2


def reserve_now(hold: Hold, planned: float, first: bool = False) -> Reserve:
    """Queue ``hold``'s reserve, planned for ``planned``; the :class:`Reserve` to return."""
    hold._wire = _QUEUED
    hold._planned = planned
    if hold._more is not None:  # a retry was planned: this reserve is it
        hold._retry_at = 0.0
    if hold.state is _ACTIVE:
        hold.state = _RENEWING
    return _RESERVE_FIRST if first else _RESERVE


def _at_risk(hold: Hold, reason: str, actions: list[Action], *, risk_try: bool = True) -> None:
    """Mark the hold at risk (its event once per episode); plan its risk try unless
    a reserve on the wire may still save it (``risk_try=False``)."""
    if risk_try:
        hold._risk = True
        hold._retry_at = 0.0
    if hold.state is not _AT_RISK:
        hold.state = _AT_RISK
        actions.append(Emit(AtRisk, 0.0, {"reason": reason}))


def _end(hold: Hold, state: HoldState, event: Emit, linger: bool = True) -> list[Action]:
    # End comes first: a shared store may refuse it, and then nothing else happens
    end = _END_FROM[hold.state]  # a live state: terminal holds never reach _end
    hold.state = state
    hold._action = None
    reservation = hold.reservation
    if linger and reservation is not None:
        return [end, Linger(reservation), event]
    return [end, event]


def orphaned(hold: Hold) -> None:
    """A shared record says RENEWING, but no renewal of it runs here: the worker that
    ran it is gone. The hold is ACTIVE again; its renewal is due at once."""
    if hold.state is _RENEWING and not hold._wire:
        hold.state = _ACTIVE


def ended_elsewhere(hold: Hold, state: HoldState) -> None:
    """Another process ended ``hold`` in terminal ``state``: this copy follows."""
    if not hold.done and state in _TERMINAL_STATES:
        hold.state = state
        hold._action = None


def disowned(hold: Hold, previous: HoldState) -> None:
    """A shared store refused to end ``hold``: another worker claimed it since, and
    that worker decides how it ends. The hold goes back to ``previous`` here."""
    hold.state = previous


# -- the transitions -------------------------------------------------------------------


def _due(hold: Hold, inp: Due, now: float, rules: Rules) -> list[Action]:
    if hold._action is not None and (
        inp.action != hold._action or abs(inp.at - hold._due) > SAME_DUE
    ):
        # a claim of an action a later plan replaced (a heartbeat restored it):
        # never fire it; put the real pending action back
        return [Plan(hold._action, hold._due)]
    if inp.at > now + rules.resolution:
        return [Plan(inp.action, inp.at)]  # claimed early: put back, never fired
    hold._action = None
    lateness = now - inp.at if now > inp.at else 0.0
    if inp.action == WARN:
        hold._warned = True
        return [Emit(Expiring, lateness), *plan(hold, now, rules)]
    if inp.action == RENEW:
        reservation = hold.reservation
        assert reservation is not None
        past = now >= local_deadline(reservation, rules.policy)
        if hold._wire or (hold._paused and not past):
            return plan(hold, now, rules)
        if not hold._risk and (
            not_renewable(hold, now, rules) is not None
            # a renew claimed within the resolution of the floor is due: planning it
            # for the floor again would put back the same claim at this instant forever
            # (the renewal worker still waits for the floor, see not_before)
            or now + rules.resolution < not_before(hold, rules)
        ):
            return plan(hold, now, rules)
        return [reserve_now(hold, inp.at), *plan(hold, now, rules)]
    # DROP: the local deadline came without a renewal
    reason = not_renewable(hold, now, rules)
    if hold.state is _ACTIVE and not hold._wire and reason is not None:
        return _end(hold, HoldState.EXPIRED, Emit(Expired, lateness, {"reason": reason}))
    actions: list[Action] = []
    if hold._wire:  # the reserve on the wire may still save it; its answer decides
        _at_risk(hold, "renewal in flight at the deadline", actions, risk_try=False)
    else:
        _at_risk(hold, "deadline", actions)
    actions += plan(hold, now, rules)
    return actions


def _answered(hold: Hold, inp: Answered, now: float, rules: Rules) -> list[Action]:
    hold._wire = WIRE_IDLE
    old = hold.reservation
    assert old is not None
    hold.reservation = inp.reservation
    hold.renewals += 1
    hold.state = _ACTIVE
    hold._warned = hold._risk = False
    hold._attempt = 0
    hold._retry_at = 0.0
    return [
        Linger(old),
        Emit(Renewed, inp.lateness, {"old": old, "new": inp.reservation}),
        *plan(hold, now, rules),
    ]


def _refused(hold: Hold, inp: Refused, now: float, rules: Rules) -> list[Action]:
    hold._wire = WIRE_IDLE
    failure = inp.failure
    actions: list[Action] = [Uncertain(inp.sent)] if failure.uncertain else []
    reservation = hold.reservation
    assert reservation is not None
    failed = Emit(RenewalFailed, 0.0, {"error": failure.error, "will_retry": True})
    if hold._risk:
        if inp.sent >= reservation.deadline:  # the risk try failed: the ticket is gone
            reason = _reason(failure)
            return actions + _end(hold, HoldState.LOST, Emit(Lost, 0.0, {"reason": reason}))
        # a try before the drop (a checkout's) failed: the old unit is not back in
        # stock yet, so this says nothing; the risk try after the drop stays planned
        actions.append(failed)
        actions += plan(hold, now, rules)
        return actions
    policy = rules.policy
    deadline = local_deadline(reservation, policy)
    hold._attempt += 1
    actions.append(failed)
    if failure.kind != "sold_out":
        wait = rules.retry.backoff(hold._attempt, failure.retry_after, rules.rng)
        floor = inp.sent + policy.min_renew_interval
        retry_at = max(now + wait, floor)
        if retry_fits(now, retry_at - now, deadline, rules.latency_p99):
            if hold.state is _RENEWING:
                hold.state = _ACTIVE
            hold._retry_at = retry_at
            actions += plan(hold, now, rules)
            return actions
        reason = "retry would pass the deadline"
    else:
        # overlap rule: while the old reservation runs its unit is not in stock;
        # the one more try comes just after it drops
        reason = "sold_out"
    _at_risk(hold, reason, actions)
    actions += plan(hold, now, rules)
    return actions


def _checkout_started(hold: Hold, inp: CheckoutStarted, now: float, rules: Rules) -> list[Action]:
    del inp
    hold._paused = True
    reservation = hold.reservation
    assert reservation is not None
    policy = rules.policy
    left = local_deadline(reservation, policy) - now
    actions: list[Action] = []
    needs = hold.state is not _ACTIVE or left < policy.renew_before
    if needs and not hold._wire:
        # the worker keeps the floor (not_before): checkout waits for it, a second at most
        actions.append(reserve_now(hold, now, first=True))
    actions += plan(hold, now, rules)
    return actions


def _checkout_succeeded(
    hold: Hold, inp: CheckoutSucceeded, now: float, rules: Rules
) -> list[Action]:
    del now, rules
    hold._paused = False
    return _end(hold, HoldState.ORDERED, Emit(CheckedOut, 0.0, {"order": inp.order}), False)


def _checkout_failed(hold: Hold, inp: CheckoutFailed, now: float, rules: Rules) -> list[Action]:
    del inp
    hold._paused = False
    return plan(hold, now, rules)


def _released(hold: Hold, inp: Remove | Close, now: float, rules: Rules) -> list[Action]:
    del inp, now, rules
    return _end(hold, HoldState.RELEASED, _RELEASED)


def _replan(hold: Hold, inp: ClockJumped, now: float, rules: Rules) -> list[Action]:
    del inp
    return plan(hold, now, rules)


def _ended(hold: Hold, inp: Input, now: float, rules: Rules) -> list[Action]:
    """A terminal hold: nothing changes; a late answer's unit is accounted for (I6)."""
    del now, rules
    hold._wire = WIRE_IDLE if isinstance(inp, Answered | Refused) else hold._wire
    if isinstance(inp, Answered):
        return [Linger(inp.reservation)]
    if isinstance(inp, Refused) and inp.failure.uncertain:
        return [Uncertain(inp.sent)]
    return []


Handler: TypeAlias = Callable[[Hold, Any, float, Rules], list[Action]]

_LIVE: dict[type[Any], Handler] = {
    Due: _due,
    Answered: _answered,
    Refused: _refused,
    CheckoutStarted: _checkout_started,
    CheckoutSucceeded: _checkout_succeeded,
    CheckoutFailed: _checkout_failed,
    Remove: _released,
    Close: _released,
    ClockJumped: _replan,
}
_TERMINAL: dict[type[Any], Handler] = dict.fromkeys(INPUTS, _ended)

#: state -> input type -> the transition. Every pair is defined (the table test).
TABLE: Mapping[HoldState, Mapping[type[Any], Handler]] = {
    state: _TERMINAL if state in TERMINAL_STATES else _LIVE for state in HoldState
}


def step(hold: Hold, inp: Input, now: float, rules: Rules) -> list[Action]:
    """Apply ``inp`` to ``hold`` at ``now``; return the actions to carry out, in order."""
    return TABLE[hold.state][type(inp)](hold, inp, now, rules)

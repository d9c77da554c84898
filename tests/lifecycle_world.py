"""A tiny world around one hold for the pure lifecycle tests: plain numbers, no loop.

:class:`World` plays the manager and the server: it feeds inputs to
``_lifecycle.step``, carries out the actions the way the manager does (one
pending plan, a reserve queue of at most one, events, lingering units) and
records what the invariants I1-I6 are checked against.
"""

from __future__ import annotations

import collections
import random
from datetime import UTC, datetime

import attrs

from openticket_async import HoldPolicy, HoldState, Reservation, RetryPolicy
from openticket_async._events import TERMINAL_EVENTS, HoldEvent, Renewed
from openticket_async._hold import Hold, _Rare
from openticket_async._lifecycle import (
    Action,
    Answered,
    Due,
    Emit,
    End,
    Failure,
    Input,
    Linger,
    Plan,
    Refused,
    Reserve,
    Rules,
    Uncertain,
    not_before,
    plan,
    sending,
    step,
)
from openticket_async._planning import plausible
from openticket_async._shortcuts import renew_due, renewed

TTL = 480.0
SHOP = "11111111-1111-4111-8111-111111111111"
TICKET = "22222222-2222-4222-8222-222222222222"
WALL = datetime(2026, 1, 1, tzinfo=UTC)


def reservation(n: int, deadline: float) -> Reservation:
    return Reservation(
        guid=f"00000000-0000-4000-8000-{n:012d}",
        shop_guid=SHOP,
        ticket_guid=TICKET,
        event_date_guid=None,
        products=(),
        reserved_at=WALL,
        expires_at=WALL,
        deadline=deadline,
    )


class World:
    """One hold, its pending plan, its reserve on the wire and everything it emitted."""

    def __init__(self, policy: HoldPolicy | None = None, *, seed: int = 0, now: float = 0.0):
        self.policy = policy or HoldPolicy(renew_jitter=0.0, max_hold=None)
        self.rules = Rules(self.policy, RetryPolicy(), rng=random.Random(seed))
        self.now = now
        first = reservation(1, now + TTL)
        self.made = [first]  # reservations the server made for us
        self.hold = Hold(
            id="h1",
            cart_id="c1",
            shop_guid=SHOP,
            ticket_guid=TICKET,
            reservation=first,
            created_at=now,
        )
        self.pending: Plan | None = None
        self.queued = 0  # Reserve actions not yet sent
        self.sent: list[float] = []  # when each reserve went out
        self.answered: list[float] = []  # the send times of those that made a reservation
        self.on_wire: float | None = None  # the send time of the reserve in flight
        self.lateness = 0.0  # how late after its plan that reserve went out
        self.events: list[Emit] = []
        self.ends = 0
        self.lingered: list[Reservation] = []
        self.uncertain = 0
        self.plans: list[tuple[Plan, Reservation | None, float]] = []
        self.carry(plan(self.hold, now, self.rules))

    # -- driving --------------------------------------------------------------------

    def feed(self, inp: Input) -> list[Action]:
        # every Due and Answered also goes through the shortcut of _shortcuts on a
        # twin of the hold, which must end exactly where step ends (or not move)
        twin, twin_rules = _twin(self.hold), self._twin_rules()
        actions = step(self.hold, inp, self.now, self.rules)
        _same_as_step(twin, inp, self.now, twin_rules, self.hold, actions)
        self.carry(actions)
        return actions

    def _twin_rules(self) -> Rules:
        rng = random.Random()
        assert self.rules.rng is not None
        rng.setstate(self.rules.rng.getstate())  # the same jitter as step will draw
        return attrs.evolve(self.rules, rng=rng)

    def carry(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Plan):
                self.pending = action
                self.plans.append((action, self.hold.reservation, self.hold._last_sent))
            elif isinstance(action, Reserve):
                self.queued += 1
            elif isinstance(action, Emit):
                self.events.append(action)
            elif isinstance(action, Linger):
                self.lingered.append(action.reservation)
            elif isinstance(action, Uncertain):
                self.uncertain += 1
            elif isinstance(action, End):
                self.ends += 1
                self.pending = None

    def fire_due(self) -> bool:
        """Fire the pending action if it is due; True if it fired."""
        pending = self.pending
        if pending is None or pending.at > self.now:
            return False
        self.pending = None
        self.feed(Due(pending.action, pending.at))
        return True

    def send(self) -> bool:
        """Send the queued reserve as the renewal worker does; True if it went out."""
        if not self.queued:
            return False
        self.queued -= 1
        self.now = max(self.now, not_before(self.hold, self.rules))  # the worker waits
        lateness = sending(self.hold, self.now)
        if lateness is None:
            return False
        self.lateness = lateness
        self.sent.append(self.now)
        self.on_wire = self.now
        return True

    def answer(self, server_ttl: float | None = None) -> None:
        """The reserve on the wire succeeds; the server says it lasts ``server_ttl``."""
        sent = self.on_wire
        assert sent is not None
        self.on_wire = None
        deadline = sent + TTL if server_ttl is None else min(sent + TTL, sent + server_ttl)
        made = reservation(len(self.made) + 1, deadline)
        made = plausible(made, sent, TTL, self.policy) or made
        self.made.append(made)
        self.answered.append(sent)
        self.feed(Answered(made, sent, self.lateness))

    def refuse(self, failure: Failure) -> None:
        sent = self.on_wire
        assert sent is not None
        self.on_wire = None
        self.feed(Refused(failure, sent))

    # -- the invariants -----------------------------------------------------------------

    def check(self) -> None:
        hold = self.hold
        live = not hold.done
        if live:
            # I1: one pending action or one reserve queued or on the wire, never two reserves
            assert self.pending is not None or hold._wire, "a live hold with nothing pending"
            assert self.queued + (self.on_wire is not None) <= 1, "two reserves for one hold"
            assert hold._wire == 0 or self.queued or self.on_wire is not None
            # I2: the pending action comes before the risk try's latest time
            if self.pending is not None and hold.reservation is not None:
                latest = max(
                    hold.reservation.deadline + self.policy.safety_margin,
                    hold._last_sent + self.policy.min_renew_interval,
                )
                assert self.pending.at <= latest + 1e-9, "a plan past the drop"
        # I3: at most one end, and it comes with exactly one terminal event
        terminal = [e for e in self.events if issubclass(e.kind, TERMINAL_EVENTS)]
        assert self.ends <= 1
        assert len(terminal) == self.ends
        assert hold.done == (self.ends == 1)
        if hold.state is HoldState.AT_RISK:
            assert any(e.kind.__name__ == "AtRisk" for e in self.events)
        # I4: reserves at least min_renew_interval apart
        gaps = [b - a for a, b in zip(self.sent, self.sent[1:], strict=False)]
        assert all(gap >= self.policy.min_renew_interval - 1e-9 for gap in gaps), gaps
        # I5: every planned renew is at or before its reservation's drop, or at the floor
        for planned, res, last_sent in self.plans:
            if planned.action == "renew" and res is not None:
                drop = res.deadline + self.policy.safety_margin
                floor = last_sent + self.policy.min_renew_interval
                assert planned.at <= max(drop, floor) + 1e-9, (planned, drop, floor)
        # I6: every unit the server made is the live reservation, lingering, or ordered
        accounted = {r.guid for r in self.lingered}
        if hold.reservation is not None and (live or hold.state is HoldState.ORDERED):
            accounted.add(hold.reservation.guid)
        missing = {r.guid for r in self.made} - accounted
        assert not missing, f"units nobody accounts for: {missing}"

    def emitted(self, kind: type[HoldEvent]) -> list[Emit]:
        return [e for e in self.events if e.kind is kind]


# -- the shortcuts, held to step ---------------------------------------------------------

#: How often each shortcut took a step (and how often it declined one), over a run.
SHORTCUTS_TAKEN: collections.Counter[str] = collections.Counter()

_SLOTS = [name for name in Hold.__slots__ if name not in ("__weakref__", "_more", "_entry")]


def _twin(hold: Hold) -> Hold:
    twin = Hold.__new__(Hold)
    for name in _SLOTS:
        setattr(twin, name, getattr(hold, name))
    twin._entry = None
    more = hold._more
    if more is None:
        twin._more = None
    else:
        twin._more = copy = _Rare()
        for name in _Rare.__slots__:
            setattr(copy, name, getattr(more, name))
    return twin


def _fields(hold: Hold) -> dict[str, object]:
    fields = {name: getattr(hold, name) for name in _SLOTS}
    more = hold._more
    fields["_more"] = None if more is None else {n: getattr(more, n) for n in _Rare.__slots__}
    return fields


def _same_as_step(
    twin: Hold, inp: Input, now: float, rules: Rules, stepped: Hold, actions: list[Action]
) -> None:
    """The shortcut for ``inp`` on ``twin`` either leaves it as it was, or leaves it
    as ``step`` left ``stepped`` and implies the very ``actions`` step returned."""
    before = _fields(twin)
    implied: list[Action] | None = None
    if isinstance(inp, Due):
        if renew_due(twin, inp.action, inp.at, now, rules):
            assert twin._action is not None
            implied = [Reserve(), Plan(twin._action, twin._due)]
        name = "renew_due"
    elif isinstance(inp, Answered):
        old = renewed(twin, inp.reservation, now, rules)
        if old is not None:
            assert twin._action is not None
            fields = {"old": old, "new": inp.reservation}
            implied = [Linger(old), Emit(Renewed, inp.lateness, fields),
                       Plan(twin._action, twin._due)]  # fmt: skip
        name = "renewed"
    else:
        return
    if implied is None:
        SHORTCUTS_TAKEN[name + " declined"] += 1
        assert _fields(twin) == before, f"{name} declined but changed the hold"
        return
    SHORTCUTS_TAKEN[name] += 1
    assert _fields(twin) == _fields(stepped), f"{name} left the hold unlike step"
    assert implied == actions, (name, implied, actions)

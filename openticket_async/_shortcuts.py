"""Two rows of the lifecycle's table without their action values: a renewal's fast path.

Theory of operation
-------------------
A renewal crosses the lifecycle (``_lifecycle``) twice: its ``renew`` comes due
(``ACTIVE``, ``Due(renew)`` -> ``RENEWING``: ``Reserve``, ``Plan(safety net)``)
and its answer comes back (``RENEWING``, ``Answered`` -> ``ACTIVE``:
``Linger(old)``, ``Emit(Renewed)``, ``Plan``). With thousands of holds renewed at
once these two steps are most of the manager's own work per renewal, and their
values (the ``Due`` and ``Answered`` inputs, the ``Plan``, ``Emit`` and
``Linger`` actions, their lists) cost more than the decisions themselves.

:func:`renew_due` and :func:`renewed` make the same decisions for the common
case only: a hold with none of the rare fields set (no failed try, no risk, no
checkout pause, no claim fence), whose renewal is due now as planned or whose
answer came back. They change the hold exactly as
:func:`~openticket_async._lifecycle.step` would, and the caller carries out the
actions ``step`` would have returned, in the same order, read off the hold. Any
other case they leave untouched (they return False or None), and the caller
takes ``step``. The table stays the one statement of the rules:
``tests/test_lifecycle_shortcuts.py`` holds both functions to ``step`` over
every kind of hold the table tests build, so a rule changed there and not here
fails a test.

Pure, like the machine: no clock reads, no I/O; the caller passes "now".
"""

from __future__ import annotations

from ._hold import Hold, HoldState
from ._hold_plan import Rules, not_renewable, replan
from ._lifecycle import SAME_DUE, WIRE_IDLE, reserve_now
from ._models import Reservation
from ._planning import RENEW

__all__ = ["renew_due", "renewed"]

_ACTIVE, _RENEWING = HoldState.ACTIVE, HoldState.RENEWING


def renew_due(hold: Hold, action: str, at: float, now: float, rules: Rules) -> bool:
    """``step(hold, Due(action, at))`` for a renewal that goes out now, or False.

    True: the hold is ``RENEWING`` with its reserve queued and its safety net
    planned (``hold._action`` at ``hold._due``); the caller queues the reserve,
    then saves the plan (``Reserve``, then ``Plan``). False: nothing changed.
    """
    if (
        action != RENEW
        or hold._action != RENEW
        or hold.state is not _ACTIVE
        or hold._more is not None
        or hold._wire
        or not -SAME_DUE <= at - hold._due <= SAME_DUE
        or at > now + rules.resolution
        or now + rules.resolution < hold._last_sent + rules.policy.min_renew_interval
        or not_renewable(hold, now, rules) is not None
    ):
        return False
    reserve_now(hold, at)
    replan(hold, now, rules)
    return True


def renewed(hold: Hold, reservation: Reservation, now: float, rules: Rules) -> Reservation | None:
    """``step(hold, Answered(reservation, ...))`` for a renewing hold, or None.

    Returns the old reservation: the caller lets it linger, emits ``Renewed``
    (old to ``reservation``) and saves the plan now in ``hold._action`` and
    ``hold._due``, in that order. None: nothing changed.
    """
    if hold.state is not _RENEWING or hold._more is not None:
        return None
    old = hold.reservation
    assert old is not None  # a live hold always has one
    hold._wire = WIRE_IDLE
    hold.reservation = reservation
    hold.renewals += 1
    hold.state = _ACTIVE
    hold._warned = False
    replan(hold, now, rules)
    return old

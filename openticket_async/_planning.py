"""Pure timing decisions of the ReservationManager (no I/O, no clock reads).

All times are readings of the manager's monotonic clock, in seconds. A hold's
*local deadline* is its reservation's ``deadline`` (send time + TTL, or the
server's earlier expiry) minus ``HoldPolicy.safety_margin``: the manager treats
the reservation as gone from then on, although the server keeps it a little
longer. The *drop time* (``deadline + safety_margin``) is when the unit surely
returned to stock on the server: the moment an at-risk hold tries once more.
"""

from __future__ import annotations

import heapq
import random
from collections import deque

import attrs

from ._config import HoldPolicy
from ._models import Reservation

__all__ = [
    "DROP",
    "RENEW",
    "WARN",
    "LatencyTracker",
    "drop_time",
    "local_deadline",
    "plausible",
    "renew_at",
    "retry_fits",
    "warn_at",
]

#: The renewal lead is at least this many times the observed p99 reserve latency.
LATENCY_LEAD_FACTOR = 4.0

#: The actions a live hold can have pending (see ``_manager``).
WARN, RENEW, DROP = "warn", "renew", "drop"


def local_deadline(reservation: Reservation, policy: HoldPolicy) -> float:
    """When the manager stops counting on ``reservation``."""
    return reservation.deadline - policy.safety_margin


def drop_time(reservation: Reservation, policy: HoldPolicy) -> float:
    """When the server has surely dropped ``reservation`` and freed its unit."""
    return reservation.deadline + policy.safety_margin


def warn_at(reservation: Reservation, policy: HoldPolicy) -> float:
    """When ``Expiring`` fires for ``reservation``."""
    return local_deadline(reservation, policy) - policy.warn_before


def renew_at(
    reservation: Reservation,
    policy: HoldPolicy,
    latency_p99: float,
    rng: random.Random | None = None,
) -> float:
    """When renewal of ``reservation`` starts.

    The lead is ``renew_before`` or a few times the observed p99 latency,
    whichever is longer; jitter only ever subtracts, so a renewal never starts
    later than ``local_deadline - lead``.
    """
    lead = LATENCY_LEAD_FACTOR * latency_p99
    if lead < policy.renew_before:
        lead = policy.renew_before
    jitter = policy.renew_jitter
    if jitter:
        jitter *= (rng or random).random()  # uniform over [0, renew_jitter)
    return reservation.deadline - policy.safety_margin - lead - jitter


def plausible(
    reservation: Reservation, sent: float, ttl: float, policy: HoldPolicy
) -> Reservation | None:
    """None if ``reservation``'s deadline can be trusted, else the same reservation
    running on the local TTL (``sent + ttl``).

    A server expiry that leaves less than ``policy.min_server_ttl`` after the
    send, or lies in the past, says more about the server's clock (minutes
    behind, a time-zone slip) than about the reservation: trusting it would
    renew at once, again and again. Such a deadline is replaced by the local
    TTL counted from the send, the conservative reading of the 8-minute drop.
    """
    floor = policy.min_server_ttl
    if ttl < floor:  # min(), without the call: this runs once per reserve
        floor = ttl
    if reservation.deadline - sent >= floor:
        return None
    return attrs.evolve(reservation, deadline=sent + ttl)


def retry_fits(now: float, wait: float, deadline: float, latency_p99: float) -> bool:
    """Whether a retry after ``wait`` can still finish before ``deadline``."""
    return now + wait + max(latency_p99, 0.0) * 2 < deadline


class LatencyTracker:
    """Recent reserve latencies and their p99, over a bounded window.

    ``p99`` is a plain attribute, read on every plan. It is recomputed after every
    ``every`` new samples (after each one while the window is that small), not on
    each read: that would cost more than the plan itself, and a renewal lead that
    lags a few samples behind is harmless.
    """

    def __init__(self, window: int = 256, every: int = 32) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._every = every
        self._fresh = 0  # samples recorded since the last recompute
        #: The 99th percentile of the window (0 before any sample).
        self.p99 = 0.0

    def record(self, seconds: float) -> None:
        """Add one observed latency (negative readings count as zero)."""
        samples = self._samples
        samples.append(seconds if seconds > 0.0 else 0.0)
        self._fresh += 1
        if self._fresh >= self._every or len(samples) <= self._every:
            n = len(samples)
            # the p99 is the k-th largest sample: no need to sort the whole window
            k = n - min(n - 1, int(n * 0.99))
            self.p99 = heapq.nlargest(k, samples)[-1]
            self._fresh = 0

    def __len__(self) -> int:
        return len(self._samples)


def earliest_renew_at(reservation: Reservation, policy: HoldPolicy, latency_p99: float) -> float:
    """The earliest time :func:`renew_at` can choose for ``reservation``, whatever the jitter.

    For whoever must act just before the manager renews (the demo's rival buyer
    takes the last spare unit then): acting by this time is never too late. It
    is :func:`renew_at`'s lead with the whole ``renew_jitter`` taken off.
    """
    lead = max(policy.renew_before, LATENCY_LEAD_FACTOR * latency_p99)
    return local_deadline(reservation, policy) - lead - policy.renew_jitter

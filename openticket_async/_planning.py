"""Pure timing decisions of the ReservationManager (no I/O, no clock reads).

All times are readings of the manager's monotonic clock, in seconds. A hold's
*local deadline* is its reservation's ``deadline`` (send time + TTL, or the
server's earlier expiry) minus ``HoldPolicy.safety_margin``: the manager treats
the reservation as gone from then on, although the server keeps it a little
longer. The *drop time* (``deadline + safety_margin``) is when the unit surely
returned to stock on the server: the moment an at-risk hold tries once more.
"""

from __future__ import annotations

import random
from collections import deque

from ._config import HoldPolicy
from ._models import Reservation

__all__ = [
    "LatencyTracker",
    "drop_time",
    "local_deadline",
    "renew_at",
    "retry_fits",
    "warn_at",
]

#: The renewal lead is at least this many times the observed p99 reserve latency.
LATENCY_LEAD_FACTOR = 4.0


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
    lead = max(policy.renew_before, LATENCY_LEAD_FACTOR * latency_p99)
    jitter = (rng or random).uniform(0.0, policy.renew_jitter) if policy.renew_jitter else 0.0
    return local_deadline(reservation, policy) - lead - jitter


def retry_fits(now: float, wait: float, deadline: float, latency_p99: float) -> bool:
    """Whether a retry after ``wait`` can still finish before ``deadline``."""
    return now + wait + max(latency_p99, 0.0) * 2 < deadline


class LatencyTracker:
    """Recent reserve latencies and their p99, over a bounded window.

    The p99 is recomputed after every ``every`` new samples, not on each read:
    sorting the window on every add would cost more than the add itself, and a
    renewal lead that lags a few samples behind is harmless.
    """

    def __init__(self, window: int = 256, every: int = 32) -> None:
        self._samples: deque[float] = deque(maxlen=window)
        self._every = every
        self._p99 = 0.0
        self._fresh = 0  # samples recorded since the last recompute

    def record(self, seconds: float) -> None:
        """Add one observed latency (negative readings count as zero)."""
        self._samples.append(seconds if seconds > 0.0 else 0.0)
        self._fresh += 1

    @property
    def p99(self) -> float:
        """The 99th percentile of the window (0 before any sample)."""
        fresh = self._fresh
        if fresh >= self._every or (fresh and len(self._samples) <= self._every):
            ordered = sorted(self._samples)
            self._p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            self._fresh = 0
        return self._p99

    def __len__(self) -> int:
        return len(self._samples)

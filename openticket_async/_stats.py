"""``ReservationManager.stats()``: a cheap, typed snapshot for health checks.

The snapshot is read from what the manager keeps anyway (its carts, the
renewal queue, the lingering units) plus two small records kept here: a
window of recent renewal latenesses and the shared store's health. Reading it
costs one pass over the holds of the open carts and a sort of at most
``LATENESS_WINDOW`` numbers; it never waits on the network.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import attrs

from ._hold import Hold, HoldState
from ._holdlog import log_store
from ._telemetry import HoldMetrics
from .stores import MonitoredStore, ReservationStore

__all__ = [
    "LATENESS_WINDOW",
    "LIVE_STATES",
    "LatenessWindow",
    "ManagerStats",
    "StoreHealth",
    "StoreWatch",
    "count_states",
    "snapshot",
]

#: How many recent renewals the lateness percentiles are taken over.
LATENESS_WINDOW = 512
#: The states a hold the manager keeps can be in (the terminal ones are forgotten).
LIVE_STATES = (HoldState.ACTIVE, HoldState.RENEWING, HoldState.AT_RISK)


class StoreHealth(enum.Enum):
    """Whether the manager's store answers."""

    MEMORY = "memory"  #: the in-process store: always there
    AVAILABLE = "available"  #: a shared store that answers
    UNAVAILABLE = "unavailable"  #: a shared store that cannot be reached; no due work is claimed


@attrs.frozen
class ManagerStats:
    """A snapshot of a :class:`~openticket_async.ReservationManager` (``manager.stats()``).

    ``holds`` counts the live holds of the carts open in this manager by state
    (every live state present, zero included); ``carts`` counts those carts.
    ``next_due_in`` is the seconds until the scheduler's next planned action
    (None when nothing is planned). ``renewals_in_flight`` counts renewal
    reserves queued or on the wire; ``lingering_units`` the units the server
    may still hold for us that no live hold counts on. ``lateness_p50`` and
    ``lateness_p99`` are the seconds renewal reserves went out after their
    planned time, over the last ``LATENESS_WINDOW`` renewals (None before the
    first). ``store`` says whether the store answers.
    """

    holds: Mapping[HoldState, int]
    carts: int
    next_due_in: float | None
    renewals_in_flight: int
    lingering_units: int
    lateness_p50: float | None
    lateness_p99: float | None
    store: StoreHealth

    @property
    def at_risk(self) -> int:
        """Holds in state ``AT_RISK``."""
        return self.holds[HoldState.AT_RISK]

    @property
    def healthy(self) -> bool:
        """No hold at risk and the store answers: what a readiness probe asks."""
        return self.at_risk == 0 and self.store is not StoreHealth.UNAVAILABLE


def count_states(holds: Iterable[Hold]) -> dict[HoldState, int]:
    """Live holds among ``holds`` by state, every live state present."""
    counts = dict.fromkeys(LIVE_STATES, 0)
    for hold in holds:
        if hold.state in counts:
            counts[hold.state] += 1
    return counts


class LatenessWindow:
    """The latenesses of the last ``size`` renewals, and their percentiles on demand."""

    def __init__(self, size: int = LATENESS_WINDOW) -> None:
        self._samples: deque[float] = deque(maxlen=size)

    def record(self, lateness: float) -> None:
        """Add one renewal's lateness (seconds)."""
        self._samples.append(lateness)

    def percentiles(self) -> tuple[float | None, float | None]:
        """(p50, p99) of the window, or (None, None) while it is empty."""
        if not self._samples:
            return None, None
        ordered = sorted(self._samples)
        last = len(ordered) - 1
        return ordered[round(last * 0.5)], ordered[round(last * 0.99)]


class StoreWatch:
    """Notices a shared store's outages: logs their start and end, counts them."""

    def __init__(self, store: ReservationStore, metrics: HoldMetrics | None) -> None:
        # A shared store swallows outages on the scheduler's path (nothing is due
        # meanwhile), so its health read is the only way to see them; a shared store
        # without one is taken as always there
        self._shared = store.shared
        self._probe = store if self._shared and isinstance(store, MonitoredStore) else None
        self._metrics = metrics
        self._down_since: float | None = None

    @property
    def health(self) -> StoreHealth:
        """The store's health as last seen."""
        if not self._shared:
            return StoreHealth.MEMORY
        return StoreHealth.UNAVAILABLE if self._down_since is not None else StoreHealth.AVAILABLE

    def check(self, now: float) -> None:
        """Look at the store after a scheduler pass at ``now``."""
        down = self._probe is not None and not self._probe.available
        if down and self._down_since is None:
            self._down_since = now
            log_store(False, None)
            if self._metrics is not None:
                self._metrics.store_unavailable()
        elif not down and self._down_since is not None:
            log_store(True, now - self._down_since)
            self._down_since = None


def snapshot(
    holds: Iterable[Hold],
    carts: int,
    next_due_in: float | None,
    renewals_in_flight: int,
    lingering_units: int,
    lateness: LatenessWindow,
    store: StoreHealth,
) -> ManagerStats:
    """The :class:`ManagerStats` of a manager's readings (``manager.stats()``)."""
    p50, p99 = lateness.percentiles()
    return ManagerStats(
        holds=MappingProxyType(count_states(holds)),
        carts=carts,
        next_due_in=next_due_in,
        renewals_in_flight=renewals_in_flight,
        lingering_units=lingering_units,
        lateness_p50=p50,
        lateness_p99=p99,
        store=store,
    )

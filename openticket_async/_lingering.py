"""Units the server may still hold for us although no live hold counts on them.

OpenTicket has no way to release a reservation, so a unit we stop counting on
stays taken until it drops by itself: the old reservation after a renewal (the
overlap), the last reservation of a released hold, and the *uncertain* unit of a
reserve that timed out or was cancelled after it may have reached the server.
The manager keeps them here until their drop time so that nobody counts them as
free stock too early.
"""

from __future__ import annotations

from collections import deque

import attrs

__all__ = ["Lingering", "LingeringUnits"]


@attrs.frozen
class Lingering:
    """A unit the server may still hold for us though no hold counts on it.

    ``reservation_guid`` is None for an *uncertain* unit: a reserve that timed out
    or was cancelled after it may have reached the server. ``until`` is when the
    server surely dropped it (manager clock).
    """

    ticket_guid: str
    reservation_guid: str | None
    until: float


class LingeringUnits:
    """A time-ordered record of lingering units, pruned as time passes."""

    def __init__(self) -> None:
        # almost always appended in ``until`` order (one TTL after each send), so
        # pruning from the left on every add keeps the deque at the live units
        self._units: deque[Lingering] = deque()

    def add(self, unit: Lingering, now: float) -> None:
        """Record ``unit`` and forget the units that dropped by ``now``."""
        self._prune(now)
        if unit.until > now:
            self._units.append(unit)

    def live(self, now: float, ticket_guid: str | None = None) -> list[Lingering]:
        """The units still held at ``now``, for one ticket or all."""
        self._prune(now)
        return [
            unit
            for unit in self._units
            if unit.until > now and (ticket_guid is None or unit.ticket_guid == ticket_guid)
        ]

    def _prune(self, now: float) -> None:
        units = self._units
        while units and units[0].until <= now:
            units.popleft()

    def __len__(self) -> int:
        return len(self._units)

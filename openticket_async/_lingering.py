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
    """A time-ordered record of lingering units, pruned as time passes.

    Every released hold leaves one unit here, so units are kept as plain
    ``(until, ticket_guid, reservation_guid)`` tuples, and :class:`Lingering`
    values are built only for :meth:`live`.
    """

    def __init__(self) -> None:
        # almost always appended in ``until`` order (one TTL after each send), so
        # pruning from the left on every add keeps the deque at the live units
        self._units: deque[tuple[float, str, str | None]] = deque()

    def add(self, ticket_guid: str, reservation_guid: str | None, until: float, now: float) -> None:
        """Record a unit held until ``until`` and forget the units that dropped by ``now``."""
        units = self._units
        while units and units[0][0] <= now:
            units.popleft()
        if until > now:
            units.append((until, ticket_guid, reservation_guid))

    def live(self, now: float, ticket_guid: str | None = None) -> list[Lingering]:
        """The units still held at ``now``, for one ticket or all."""
        units = self._units
        while units and units[0][0] <= now:
            units.popleft()
        return [
            Lingering(ticket, reservation, until)
            for until, ticket, reservation in self._units
            if until > now and (ticket_guid is None or ticket == ticket_guid)
        ]

    def __len__(self) -> int:
        return len(self._units)

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

    Every renewal and every released hold leaves one unit here, so a unit is kept
    as three plain values in three parallel deques (its ``until``, ticket GUID and
    reservation GUID): floats and strings are no objects the garbage collector
    tracks, where a tuple per unit would be one more for every renewal.
    :class:`Lingering` values are built only for :meth:`live`.
    """

    def __init__(self) -> None:
        # almost always appended in ``until`` order (one TTL after each send), so
        # pruning from the left on every add keeps the deques at the live units
        self._until: deque[float] = deque()
        self._tickets: deque[str] = deque()
        self._guids: deque[str | None] = deque()

    def add(self, ticket_guid: str, reservation_guid: str | None, until: float, now: float) -> None:
        """Record a unit held until ``until`` and forget the units that dropped by ``now``."""
        held = self._until
        if held and held[0] <= now:  # once per renewal: the call only when one dropped
            self._prune(now)
        if until > now:
            held.append(until)
            self._tickets.append(ticket_guid)
            self._guids.append(reservation_guid)

    def live(self, now: float, ticket_guid: str | None = None) -> list[Lingering]:
        """The units still held at ``now``, for one ticket or all."""
        self._prune(now)
        return [
            Lingering(ticket, reservation, until)
            for until, ticket, reservation in zip(
                self._until, self._tickets, self._guids, strict=True
            )
            if until > now and (ticket_guid is None or ticket == ticket_guid)
        ]

    def _prune(self, now: float) -> None:
        until = self._until
        while until and until[0] <= now:
            until.popleft()
            self._tickets.popleft()
            self._guids.popleft()

    def __len__(self) -> int:
        return len(self._until)

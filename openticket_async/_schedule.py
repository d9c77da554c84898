"""The pure deadline queue: what is due at a given "now", and when the next thing is.

Theory of operation
-------------------
The manager keeps one :class:`DeadlineQueue` and one scheduler task. It pushes
``(deadline, item, action)`` for every planned warning, renewal or drop, asks
:meth:`~DeadlineQueue.next_deadline` how long it may sleep, and after waking asks
:meth:`~DeadlineQueue.pop_due` for everything whose deadline has come. Nothing in
this module is async or reads a clock: "now" is always an argument, so the queue is
tested with plain numbers and the waiting lives in the manager.

Entries live in a binary heap (``heapq``). An entry is a small mutable list
``[deadline, seq, item, action]``; ``seq`` comes from a counter and is unique, so
lists compare on ``(deadline, seq)`` alone and ties break by insertion order without
ever comparing items or actions. The list itself is the handle :meth:`push` returns.

Cancelling a heap element in place would cost O(n), so cancellation is lazy: the
item slot is overwritten with a private sentinel (and the action slot cleared, so a
cancelled entry keeps nothing alive) and the entry stays in the heap until it
reaches the top, where :meth:`pop_due` and :meth:`next_deadline` discard it. A
queue whose holds are renewed over and over would then fill with dead entries, so
when cancelled entries outnumber live ones (past a small floor) the heap is rebuilt
from the live entries. That O(n) rebuild is paid for by the more than n/2 cancels
since the last one, so cancel stays amortized O(1).

Invariants
----------
1. Every entry in ``_heap`` is either live (its item slot is not the sentinel) or
   cancelled (it is). Popped entries are never in the heap; they are marked with
   the sentinel on the way out, so a handle is live exactly while its entry is
   pending.
2. Once an entry is dead it never becomes live again: handles are not reused.
3. ``len(_heap) == _live + _cancelled``.
4. After every public call, ``_cancelled <= max(_live, compact_floor)``; hence
   ``heap_size <= 2 * len(queue) + compact_floor``.
5. ``seq`` strictly increases over the queue's life, so no two entries share a
   ``(deadline, seq)`` key and heap order is the documented order: by deadline,
   then by insertion.
6. No deadline is NaN: a NaN compares false both ways and would corrupt the heap.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, Generic, TypeAlias, TypeVar, cast

from ._exceptions import InvalidArgument

__all__ = ["COMPACT_FLOOR", "DeadlineQueue", "Entry"]

T = TypeVar("T")
A = TypeVar("A")

#: The opaque handle :meth:`DeadlineQueue.push` returns. Its layout is private.
Entry: TypeAlias = list[Any]

#: The default ``compact_floor``: up to this many cancelled entries never trigger a
#: rebuild, or tiny queues would rebuild on almost every cancel for no memory gain.
COMPACT_FLOOR = 64

# Slots of an entry, laid out as [deadline, seq, item, action]; seq is only compared.
_DEADLINE, _ITEM, _ACTION = 0, 2, 3

# Marks a dead entry in its item slot. Items may be any value, None included, so
# only a private object can say "no item".
_DEAD: Any = object()


class DeadlineQueue(Generic[T, A]):
    """Items with actions due at deadlines, popped in (deadline, insertion) order.

    ``T`` is what is scheduled (the manager uses holds), ``A`` what to do with it.
    Deadlines are plain floats on whatever clock the caller uses.
    """

    __slots__ = ("_cancelled", "_compact_floor", "_heap", "_live", "_seq")

    def __init__(self, *, compact_floor: int = COMPACT_FLOOR) -> None:
        """Create an empty queue.

        ``compact_floor`` is how many cancelled entries may always stay in the heap
        before a rebuild is considered (see invariant 4); tests lower it. Raises
        :class:`InvalidArgument` if it is negative.
        """
        if compact_floor < 0:
            raise InvalidArgument(f"compact_floor must be >= 0, got {compact_floor}")
        self._compact_floor = compact_floor
        self._heap: list[Entry] = []
        self._seq = itertools.count()
        self._live = 0
        self._cancelled = 0

    def push(self, deadline: float, item: T, action: A) -> Entry:
        """Schedule ``action`` for ``item`` at ``deadline``; return the entry's handle.

        O(log n). Raises :class:`InvalidArgument` if ``deadline`` is NaN.
        """
        if deadline != deadline:  # NaN, tested without a call: push is on every plan
            raise InvalidArgument("a deadline must not be NaN")
        entry: Entry = [deadline, next(self._seq), item, action]
        heapq.heappush(self._heap, entry)
        self._live += 1
        return entry

    def cancel(self, entry: Entry) -> bool:
        """Cancel a pending entry. Return True if it was live, False if it was not.

        Idempotent: cancelling an entry that was already cancelled, popped or
        cleared does nothing. Amortized O(1). Raises nothing.
        """
        if entry[_ITEM] is _DEAD:
            return False
        entry[_ITEM] = _DEAD
        entry[_ACTION] = None
        self._live -= 1
        self._cancelled += 1
        if self._cancelled > self._live:  # the common case skips the call
            self._compact_if_sparse()
        return True

    def is_live(self, entry: Entry) -> bool:
        """True while ``entry`` is pending: not yet popped, cancelled or cleared."""
        return entry[_ITEM] is not _DEAD

    def pop_due(self, now: float, limit: int | None = None) -> list[tuple[float, T, A]]:
        """Remove and return the live entries with ``deadline <= now``.

        They come as ``(deadline, item, action)`` in (deadline, insertion) order, at
        most ``limit`` of them (all if ``limit`` is None); the rest stay queued.
        Raises :class:`InvalidArgument` if ``limit`` is negative.
        """
        if limit is not None and limit < 0:
            raise InvalidArgument(f"limit must be >= 0 or None, got {limit}")
        heap = self._heap
        due: list[tuple[float, T, A]] = []
        append, pop = due.append, heapq.heappop
        left = len(heap) if limit is None else limit
        dead = 0
        # the scheduler's hot loop: locals only, counters settled once at the end
        while left and heap and heap[0][_DEADLINE] <= now:
            entry = pop(heap)
            item = entry[_ITEM]
            if item is _DEAD:
                dead += 1
                continue
            append((entry[_DEADLINE], item, entry[_ACTION]))
            entry[_ITEM] = _DEAD
            entry[_ACTION] = None
            left -= 1
        self._cancelled -= dead
        self._live -= len(due)
        # Popping live entries can leave the cancelled ones in the majority.
        self._compact_if_sparse()
        return due

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None if nothing is pending.

        Discards cancelled entries it finds at the top of the heap. Raises nothing.
        """
        heap = self._heap
        while heap and heap[0][_ITEM] is _DEAD:
            heapq.heappop(heap)
            self._cancelled -= 1
        return cast(float, heap[0][_DEADLINE]) if heap else None

    def clear(self) -> None:
        """Drop every entry; handles given out before become dead. Raises nothing."""
        for entry in self._heap:
            entry[_ITEM] = _DEAD
            entry[_ACTION] = None
        self._heap = []
        self._live = 0
        self._cancelled = 0

    @property
    def heap_size(self) -> int:
        """Entries physically in the heap, live and cancelled (for tests and metrics)."""
        return len(self._heap)

    def __len__(self) -> int:
        """The number of live (pending, not cancelled) entries."""
        return self._live

    def __repr__(self) -> str:
        return f"<DeadlineQueue live={self._live} cancelled={self._cancelled}>"

    def _compact_if_sparse(self) -> None:
        # The O(n) rebuild runs only once more than n/2 cancels have happened since
        # the last one, which keeps cancel amortized O(1).
        if self._cancelled <= self._live or self._cancelled <= self._compact_floor:
            return
        self._heap[:] = [entry for entry in self._heap if entry[_ITEM] is not _DEAD]
        heapq.heapify(self._heap)
        self._cancelled = 0

"""The pure deadline queue, with plain numbers and no event loop."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
)

from openticket_async import InvalidArgument
from openticket_async._schedule import COMPACT_FLOOR, DeadlineQueue, Entry


def test_pop_due_returns_entries_in_deadline_order() -> None:
    queue: DeadlineQueue[str, str] = DeadlineQueue()
    queue.push(30.0, "c", "drop")
    queue.push(10.0, "a", "warn")
    queue.push(20.0, "b", "renew")

    assert queue.pop_due(100.0) == [(10.0, "a", "warn"), (20.0, "b", "renew"), (30.0, "c", "drop")]
    assert len(queue) == 0


def test_equal_deadlines_pop_in_insertion_order() -> None:
    queue: DeadlineQueue[str, int] = DeadlineQueue()
    for index, item in enumerate(["first", "second", "third", "fourth"]):
        queue.push(5.0, item, index)

    assert [item for _, item, _ in queue.pop_due(5.0)] == ["first", "second", "third", "fourth"]


def test_items_are_never_compared() -> None:
    class Incomparable:
        def __lt__(self, other: object) -> bool:
            raise AssertionError("items must not be compared")

    queue: DeadlineQueue[Incomparable, Incomparable] = DeadlineQueue()
    for _ in range(50):
        queue.push(1.0, Incomparable(), Incomparable())

    assert len(queue.pop_due(1.0)) == 50


def test_pop_due_leaves_entries_not_yet_due() -> None:
    queue: DeadlineQueue[str, str] = DeadlineQueue()
    queue.push(10.0, "due", "renew")
    queue.push(10.5, "later", "renew")

    assert queue.pop_due(10.0) == [(10.0, "due", "renew")]
    assert queue.pop_due(10.4) == []
    assert len(queue) == 1
    assert queue.next_deadline() == 10.5


def test_pop_due_respects_limit_and_keeps_the_rest_in_order() -> None:
    queue: DeadlineQueue[int, None] = DeadlineQueue()
    for item in range(5):
        queue.push(float(item), item, None)

    assert [item for _, item, _ in queue.pop_due(10.0, limit=2)] == [0, 1]
    assert [item for _, item, _ in queue.pop_due(10.0, limit=0)] == []
    assert [item for _, item, _ in queue.pop_due(10.0)] == [2, 3, 4]


def test_pop_due_rejects_a_negative_limit() -> None:
    with pytest.raises(InvalidArgument):
        DeadlineQueue[int, None]().pop_due(1.0, limit=-1)


def test_push_rejects_a_nan_deadline() -> None:
    with pytest.raises(InvalidArgument):
        DeadlineQueue[int, None]().push(float("nan"), 1, None)


def test_cancelled_entry_is_not_popped() -> None:
    queue: DeadlineQueue[str, str] = DeadlineQueue()
    kept = queue.push(1.0, "kept", "renew")
    dropped = queue.push(1.0, "dropped", "renew")

    assert queue.cancel(dropped) is True
    assert queue.is_live(kept)
    assert not queue.is_live(dropped)
    assert len(queue) == 1
    assert queue.pop_due(2.0) == [(1.0, "kept", "renew")]


def test_cancel_after_pop_reports_not_live_and_changes_nothing() -> None:
    queue: DeadlineQueue[str, str] = DeadlineQueue()
    popped = queue.push(1.0, "popped", "drop")
    queue.push(2.0, "pending", "drop")
    queue.pop_due(1.0)

    assert not queue.is_live(popped)
    assert queue.cancel(popped) is False
    assert len(queue) == 1
    assert queue.pop_due(2.0) == [(2.0, "pending", "drop")]


def test_cancel_is_idempotent() -> None:
    queue: DeadlineQueue[str, str] = DeadlineQueue()
    entry = queue.push(1.0, "hold", "renew")
    queue.push(1.0, "other", "renew")

    assert queue.cancel(entry) is True
    assert queue.cancel(entry) is False
    assert queue.cancel(entry) is False
    assert len(queue) == 1


def test_cancel_releases_the_item_and_action() -> None:
    queue: DeadlineQueue[object, object] = DeadlineQueue()
    item, action = object(), object()
    entry = queue.push(1.0, item, action)
    queue.cancel(entry)

    assert item not in entry
    assert action not in entry


def test_next_deadline_skips_cancelled_entries() -> None:
    queue: DeadlineQueue[str, str] = DeadlineQueue()
    first = queue.push(1.0, "a", "warn")
    second = queue.push(2.0, "b", "warn")
    queue.push(3.0, "c", "warn")

    queue.cancel(first)
    queue.cancel(second)

    assert queue.next_deadline() == 3.0
    assert queue.heap_size == 1


def test_next_deadline_of_an_empty_queue_is_none() -> None:
    queue: DeadlineQueue[str, str] = DeadlineQueue()
    assert queue.next_deadline() is None
    queue.cancel(queue.push(1.0, "a", "warn"))
    assert queue.next_deadline() is None


def test_clear_empties_the_queue_and_kills_old_handles() -> None:
    queue: DeadlineQueue[str, str] = DeadlineQueue()
    entry = queue.push(1.0, "a", "warn")
    queue.push(2.0, "b", "warn")

    queue.clear()

    assert len(queue) == 0
    assert queue.heap_size == 0
    assert queue.next_deadline() is None
    assert queue.cancel(entry) is False
    queue.push(5.0, "c", "warn")
    assert len(queue) == 1


def test_mass_cancellation_compacts_the_heap() -> None:
    queue: DeadlineQueue[int, None] = DeadlineQueue()
    entries = [queue.push(float(n), n, None) for n in range(10_000)]

    # cancel everything except every tenth entry, the way renewals replace entries
    for n, entry in enumerate(entries):
        if n % 10:
            queue.cancel(entry)

    assert len(queue) == 1_000
    assert queue.heap_size <= 2 * len(queue) + COMPACT_FLOOR
    assert [item for _, item, _ in queue.pop_due(float("inf"))] == list(range(0, 10_000, 10))


def test_repeated_replacement_keeps_the_heap_bounded() -> None:
    queue: DeadlineQueue[int, None] = DeadlineQueue()
    pending = {hold: queue.push(100.0, hold, None) for hold in range(100)}

    for round_ in range(50):
        for hold in range(100):
            queue.cancel(pending[hold])
            pending[hold] = queue.push(100.0 + round_, hold, None)
        assert queue.heap_size <= 2 * len(queue) + COMPACT_FLOOR

    assert len(queue) == 100


def test_popping_live_entries_keeps_the_heap_bounded() -> None:
    queue: DeadlineQueue[int, None] = DeadlineQueue(compact_floor=0)
    late = [queue.push(1_000.0 + n, n, None) for n in range(100)]
    for entry in late[:40]:
        queue.cancel(entry)
    for n in range(100):
        queue.push(float(n), n, None)

    queue.pop_due(99.0)

    assert len(queue) == 60
    assert queue.heap_size <= 2 * len(queue)


def test_compaction_does_not_disturb_order() -> None:
    queue: DeadlineQueue[int, None] = DeadlineQueue(compact_floor=0)
    entries = [queue.push(float(n % 7), n, None) for n in range(100)]
    for entry in entries[::2]:
        queue.cancel(entry)

    popped = queue.pop_due(10.0)

    assert popped == sorted(popped, key=lambda due: (due[0], due[1]))
    assert [item for _, item, _ in popped] == sorted(
        range(1, 100, 2), key=lambda n: (n % 7, n)
    )


def test_negative_compact_floor_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        DeadlineQueue[int, None](compact_floor=-1)


class QueueAgainstSortedList(RuleBasedStateMachine):
    """Random push/cancel/pop_due sequences agree with a plain sorted-list model."""

    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.queue: DeadlineQueue[int, str] = DeadlineQueue(compact_floor=2)
        # the model: (deadline, insertion number, item, action) of live entries
        self.model: list[tuple[float, int, int, str]] = []
        self.pushed = 0

    @rule(target=handles, deadline=st.integers(0, 20).map(float), action=st.sampled_from("wrd"))
    def push(self, deadline: float, action: str) -> tuple[Entry, int]:
        item = self.pushed
        self.pushed += 1
        self.model.append((deadline, item, item, action))
        return self.queue.push(deadline, item, action), item

    @rule(handle=handles)
    def cancel(self, handle: tuple[Entry, int]) -> None:
        entry, item = handle
        was_live = any(row[2] == item for row in self.model)
        self.model = [row for row in self.model if row[2] != item]
        assert self.queue.cancel(entry) is was_live
        assert not self.queue.is_live(entry)

    @rule(handle=consumes(handles))
    def forget(self, handle: tuple[Entry, int]) -> None:
        entry, item = handle
        assert self.queue.is_live(entry) is any(row[2] == item for row in self.model)

    @rule(
        now=st.integers(-1, 22).map(float),
        limit=st.none() | st.integers(0, 5),
    )
    def pop_due(self, now: float, limit: int | None) -> None:
        due = sorted(row for row in self.model if row[0] <= now)
        if limit is not None:
            due = due[:limit]
        for row in due:
            self.model.remove(row)
        assert self.queue.pop_due(now, limit) == [(d, item, action) for d, _, item, action in due]

    @rule(target=handles, count=st.integers(1, 30))
    def push_many(self, count: int) -> object:
        return multiple(*(self.push(float(count % 5), "r") for _ in range(count)))

    @invariant()
    def agrees_with_model(self) -> None:
        assert len(self.queue) == len(self.model)
        expected = min((row[0] for row in self.model), default=None)
        assert self.queue.next_deadline() == expected
        assert self.queue.heap_size <= 2 * len(self.queue) + 2


QueueAgainstSortedList.TestCase.settings = settings(max_examples=60, stateful_step_count=60)
TestQueueAgainstSortedList = QueueAgainstSortedList.TestCase


@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.booleans()), max_size=200))
def test_pop_due_everything_yields_sorted_live_entries(rows: list[tuple[float, bool]]) -> None:
    queue: DeadlineQueue[int, None] = DeadlineQueue(compact_floor=1)
    entries = [queue.push(deadline, n, None) for n, (deadline, _) in enumerate(rows)]
    for entry, (_, cancelled) in zip(entries, rows, strict=True):
        if cancelled:
            queue.cancel(entry)

    expected = sorted((d, n) for n, (d, cancelled) in enumerate(rows) if not cancelled)
    assert [(d, n) for d, n, _ in queue.pop_due(float("inf"))] == expected
    assert queue.heap_size == 0

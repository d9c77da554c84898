"""Shared arrangements for the ReservationManager tests (fake server + FakeClock)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from openticket_async import CheckedOut, Expired, HoldEvent, Lost, Receiver, Released
from openticket_async.testing import FakeOpenTicket

TERMINAL = (Lost, Expired, Released, CheckedOut)
RECEIVER = Receiver(email="buyer@example.com", firstname="Ada", lastname="Lovelace")


class Recorder:
    """Collects every event a manager emits, in order."""

    def __init__(self) -> None:
        self.events: list[HoldEvent] = []

    def __call__(self, event: HoldEvent) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def names_for(self, hold: object) -> list[str]:
        return [type(event).__name__ for event in self.events if event.hold is hold]

    def terminal_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for event in self.events:
            if isinstance(event, TERMINAL):
                counts[event.hold.id] += 1
        return counts


def live_guids(fake: FakeOpenTicket, ticket_guid: str | None = None) -> set[str]:
    """GUIDs of the reservations the fake server holds right now."""
    return {r.guid for r in fake.live_reservations(ticket_guid)}


def task_name(task: asyncio.Task[Any]) -> str:
    """The qualified name of the function a task runs (anyio names tasks after it)."""
    return task.get_name().removeprefix("openticket_async._manager.")


def manager_tasks() -> list[asyncio.Task[Any]]:
    """Running tasks started by a ReservationManager or its event dispatcher."""
    owners = ("ReservationManager.", "EventDispatcher.")
    return [
        t for t in asyncio.all_tasks() if owners[0] in t.get_name() or owners[1] in t.get_name()
    ]

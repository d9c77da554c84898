"""The hold the lifecycle rule tests start from (``tests/test_lifecycle*_rules.py``).

A hold made at ``T0``, not at 0, so that no rule holds by the accident of a zero,
in a ``lifecycle_world.World`` with no jitter and no max_hold unless a test says.
"""

from __future__ import annotations

import random
from typing import Any

from lifecycle_world import TTL, World

from openticket_async import HoldPolicy, Order
from openticket_async._lifecycle import Plan, Reserve

ORDER = Order(guid="33333333-3333-4333-8333-333333333333", status="paid", tickets=())
T0 = 1000.0
#: The hold's local deadline: its first reservation's, less the default safety margin.
DEADLINE = T0 + TTL - 2.0
#: When its renewal is planned with the defaults and no jitter (renew_before 60 s).
RENEWAL = DEADLINE - 60.0
#: When Expiring is planned with the defaults (warn_before 30 s).
WARNING = DEADLINE - 30.0


def world_of(**policy: Any) -> World:
    """A hold made at T0, with no jitter and no max_hold unless ``policy`` says."""
    return World(HoldPolicy(**{"renew_jitter": 0, "max_hold": None, **policy}), now=T0)


def fire_pending(world: World) -> None:
    """Advance to the pending action and fire it."""
    pending = world.pending
    assert pending is not None
    world.now = max(world.now, pending.at)
    assert world.fire_due()


def renewal_on_the_wire(world: World, at: float = RENEWAL) -> None:
    """Fire the renewal planned at ``at`` and send its reserve."""
    assert world.pending == Plan("renew", at)
    fire_pending(world)
    assert world.send()


def reserves(actions: list[object]) -> list[Reserve]:
    return [a for a in actions if isinstance(a, Reserve)]


class LongestBackoff(random.Random):
    """Draws every backoff at its ceiling, so a test can read the ceiling off the plan."""

    def uniform(self, a: float, b: float) -> float:
        return b

"""A read-only snapshot of a Redis fleet's holds: what ``openticket holds`` shows.

It reads what the workers wrote and changes nothing: SCAN over the hold keys
of every shard (never KEYS, which blocks Redis for the whole keyspace; on a
cluster, over every primary), then one pipeline of plain reads per page, no
script. A snapshot taken while workers run is not one
instant: a hold saved between two pages may show its older or newer record, and
a hold made after its page was scanned may be missing. Each hold's own fields
come from one HMGET, so a row is never torn.

Times are on the fleet clock: Redis's ``TIME``, read before the first page, is
"now" for every row. That is the clock workers on real time write their
deadlines and leases with (see ``._time``); a fleet whose workers run on a
virtual clock writes times this view cannot judge.

The key layout is the store's (``._keys``): one pattern matches the hold keys of
every shard, and the id is what follows ``hold:`` in each. A view whose layout
is not the fleet's finds none of them (a one-shard view of a single Redis looks
for untagged keys, a sharded fleet's are all tagged), so :func:`recorded_shards`
reads the count the workers recorded, for the view to use or check.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any, cast

import attrs

from ..._hold import HoldState
from ..shared._codec import new_hold
from ._link import is_cluster
from ._queue import text

if TYPE_CHECKING:
    from ._store import RedisStore

__all__ = ["FleetHold", "FleetSnapshot", "fleet_snapshot", "recorded_shards"]

#: Keys asked for per SCAN call: a hint to Redis, which may answer with more or fewer.
SCAN_COUNT = 500
_FIELDS = ("data", "owner", "lease", "action", "due", "ended")


@attrs.frozen
class FleetHold:
    """One live hold of the fleet as Redis has it.

    ``time_left`` is the seconds until its reservation's deadline (None with no
    reservation); ``owner`` is the store (worker) that last claimed it and
    ``lease_left`` the seconds its claim still protects it (0 or less: nobody
    does, and any worker may take it); ``due_in`` the seconds until its pending
    ``action``. No token is part of a hold record, so none can appear here.
    """

    hold_id: str
    cart_id: str
    shop_guid: str
    ticket_guid: str
    state: HoldState
    reservation_guid: str | None
    time_left: float | None
    renewals: int
    owner: str | None
    lease_left: float
    action: str
    due_in: float

    @property
    def at_risk(self) -> bool:
        """AT_RISK, or its reservation past its deadline with nobody having renewed it."""
        return self.state is HoldState.AT_RISK or (
            self.time_left is not None and self.time_left <= 0
        )

    def record(self) -> dict[str, Any]:
        """The hold as a flat JSON-ready dict (times rounded to milliseconds)."""
        return {
            "hold": self.hold_id,
            "cart": self.cart_id,
            "shop": self.shop_guid,
            "ticket": self.ticket_guid,
            "state": self.state.name,
            "at_risk": self.at_risk,
            "reservation": self.reservation_guid,
            "time_left": None if self.time_left is None else round(self.time_left, 3),
            "renewals": self.renewals,
            "owner": self.owner,
            "lease_left": round(self.lease_left, 3),
            "action": self.action,
            "due_in": round(self.due_in, 3),
        }


def _order(hold: FleetHold) -> tuple[bool, float, str, str]:
    left = math.inf if hold.time_left is None else hold.time_left
    return (not hold.at_risk, left, hold.cart_id, hold.hold_id)


@attrs.frozen
class FleetSnapshot:
    """The fleet's live holds at ``at`` (epoch seconds on Redis's clock), at-risk first,
    then by time left."""

    at: float
    holds: tuple[FleetHold, ...]

    @classmethod
    def of(cls, at: float, holds: Iterable[FleetHold]) -> FleetSnapshot:
        """The snapshot at ``at`` of ``holds``, put in its order."""
        return cls(at=at, holds=tuple(sorted(holds, key=_order)))

    @property
    def carts(self) -> list[str]:
        """The ids of the carts with live holds, sorted."""
        return sorted({hold.cart_id for hold in self.holds})


def _hold(hold_id: str, row: list[Any], now: float) -> FleetHold | None:
    """The hold of an HMGET row of ``_FIELDS``; None for a tombstone or a foreign record."""
    data, owner, lease, action, due, ended = row
    if ended is not None or data is None:
        return None
    try:
        # offset 0: the record's times stay epoch seconds on the fleet clock, like ``now``
        hold = new_hold(hold_id, data, 0.0)
    except (ValueError, KeyError, TypeError):
        return None  # written by another format version: not ours to show
    reservation = hold.reservation
    return FleetHold(
        hold_id=hold_id,
        cart_id=hold.cart_id,
        shop_guid=hold.shop_guid,
        ticket_guid=hold.ticket_guid,
        state=hold.state,
        reservation_guid=None if reservation is None else reservation.guid,
        time_left=None if reservation is None else reservation.deadline - now,
        renewals=hold.renewals,
        owner=None if owner is None else text(owner),
        lease_left=float(lease or 0) - now,
        action="" if action is None else text(action),
        due_in=float(due or now) - now,
    )


async def fleet_snapshot(store: RedisStore) -> FleetSnapshot:
    """The live holds under ``store``'s prefix, read without writing anything.

    ``store`` only lends its connection and key layout: it needs no clock and
    no manager. Raises StoreUnavailable if Redis is unreachable or refuses a read.
    """
    redis, link, layout = store._redis, store._link, store._keys
    seconds, micros = await link.call(redis.time())
    now = int(seconds) + int(micros) / 1e6
    holds: dict[str, FleetHold] = {}  # by id: SCAN may return a key twice
    async for page in _pages(store):
        keys = [(text(key), layout.hold_id(text(key))) for key in page]
        found = [(key, hold_id) for key, hold_id in keys if hold_id is not None]
        if not found:
            continue
        pipe = redis.pipeline(transaction=False)
        for key, _hold_id in found:
            pipe.hmget(key, list(_FIELDS))
        rows: list[Any] = await link.call(pipe.execute())
        for (_key, hold_id), row in zip(found, rows, strict=True):
            hold = _hold(hold_id, row, now)
            if hold is not None:
                holds[hold_id] = hold
    return FleetSnapshot.of(now, holds.values())


async def recorded_shards(store: RedisStore) -> list[int]:
    """The shard counts recorded by the stores on ``store``'s prefix, sorted; empty if none.

    Each store records its count at its first claim (and every half retention
    after), in its layout's shard 0:
    ``P{0}shards`` when its keys are tagged (on a cluster, or with several
    shards), ``P shards`` with one shard on a single Redis. Both are read, so
    the answer does not depend on ``store``'s own ``shards``; a single Redis may
    hold both, from workers of one shard and of several (whose stores then
    refuse to claim). A record lapses at most a retention after the last claim
    of a store that wrote it. Writes nothing.
    Raises StoreUnavailable if Redis is unreachable or refuses the read.
    """
    redis, link = store._redis, store._link
    keys = store._keys.markers(cluster=is_cluster(redis))
    found: list[Any] = await link.call(redis.mget(keys))
    return sorted({int(text(value)) for value in found if value is not None})


async def _pages(store: RedisStore) -> AsyncIterator[list[Any]]:
    """The hold keys of every shard, a SCAN page at a time (on a cluster: of every primary)."""
    redis, link, match = store._redis, store._link, store._keys.hold_glob()
    if is_cluster(redis):
        # redis-py's cluster SCAN keeps one cursor per primary: read them all, then page
        found = await link.call(_scan_all(redis.scan_iter(match=match, count=SCAN_COUNT)))
        for at in range(0, len(found), SCAN_COUNT):
            yield found[at:at + SCAN_COUNT]
        return
    cursor = 0
    while True:
        cursor, keys = cast(
            tuple[int, list[Any]],
            await link.call(redis.scan(cursor, match=match, count=SCAN_COUNT)),
        )
        yield keys
        if int(cursor) == 0:
            return


async def _scan_all(keys: AsyncIterator[Any]) -> list[Any]:
    return [key async for key in keys]

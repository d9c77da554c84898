"""The due queue seen from one RedisStore: claims, the heartbeat, restart detection.

This is the scheduler's side of the store, apart from the write-backs and the
carts because it keeps state of its own across polls: the epoch and write seq
Redis last showed (a change means Redis lost writes: rule 5 of stores.redis),
the restore window, and when the heartbeat that keeps this store's renewals
leased is next due (the package docstring's theory of operation). The
write-backs only report to it: the seq Redis acknowledged, and a safety net
that comes due before its lease ends.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any, cast

from ..._exceptions import StoreUnavailable
from ..._hold import HoldState
from .. import MIN_LEASE, Due
from ..shared import LocalHolds
from ._link import Client, Link, Script
from ._recovery import Recovery, SaveArgs
from ._time import FleetClock

__all__ = ["RESTORE_WINDOW", "DueQueue", "text"]

logger = logging.getLogger("openticket_async.stores.redis")

#: Seconds after a data loss during which no due work is handed out, so every
#: worker (polling twice as often) writes back what it knows first (rule 5).
RESTORE_WINDOW = MIN_LEASE
# CLAIM's lapse of a hold whose unfinished claim was another owner's (see _scripts)
_TAKEOVER = 2


def text(value: Any) -> str:
    """A Redis reply as a str, whether the client decodes replies or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


class DueQueue:
    """The due-queue operations of one RedisStore.

    ``claim_keys`` are the CLAIM script's keys (queue, epoch, restoring, seq;
    see :mod:`._scripts`); ``hold_prefix`` and ``checkout_prefix`` name the hold
    and checkout-claim hashes; ``restore_args`` builds a hold's SAVE arguments
    for a restore.
    """

    def __init__(
        self,
        redis: Client,
        link: Link,
        scripts: Mapping[str, Script],
        *,
        time: FleetClock,
        local: LocalHolds,
        recovery: Recovery,
        owner: str,
        claim_keys: list[str],
        hold_prefix: str,
        checkout_prefix: str,
        retention: int,
        restore_args: SaveArgs,
    ) -> None:
        self._redis = redis
        self._link = link
        self._claim = scripts["claim"]
        self._extend = scripts["extend"]
        self._time = time
        self._local = local
        self._recovery = recovery
        self._owner = owner
        self._keys = claim_keys
        self._hold_prefix = hold_prefix
        self._checkout_prefix = checkout_prefix
        self._retention = retention
        self._restore_args = restore_args
        self._epoch: str | None = None
        self._restoring_until = 0.0  # this process's wall time
        # the heartbeat renews every lease at half its length, not at every poll: a
        # burst's claims poll back to back, and each beat carries every renewal in hand
        self._next_beat = -math.inf  # on the fleet clock
        #: A safety net comes due before its lease ends: beat at the next claim.
        self.beat_now = False
        #: The largest write seq Redis acknowledged to this store.
        self.seen = 0

    def acknowledged(self, seq: int) -> None:
        """Note a write Redis acknowledged with ``seq`` (0: refused)."""
        self.seen = max(self.seen, seq)

    async def claim(self, now: float, limit: int, lease: float) -> list[Due]:
        """See :meth:`RedisStore.claim_due`; ``lease`` is the store's lease."""
        clock = self._time
        fleet_now = now + clock.skew
        try:
            await self._recovery.replay()
            await self.extend(lease, fleet_now)
            # writes acknowledged from here on may run after the claim: not a loss
            seen, sent = self.seen, clock.local_wall()
            answer = await self._link.call(
                self._claim(
                    self._keys,
                    [repr(fleet_now), repr(lease), str(limit), self._hold_prefix,
                     self._owner, os.urandom(8).hex(), str(self._retention),
                     self._checkout_prefix, clock.lease_now(fleet_now), self._epoch or "",
                     repr(RESTORE_WINDOW), str(seen)],
                )
            )
            rows = cast(list[Any], answer)
            clock.observe(rows[1], sent, clock.local_wall())
            self._restoring_until = float(rows[2]) - clock.skew
            epoch, seq = text(rows[0]), int(rows[3])
            if self._epoch is not None and (epoch != self._epoch or seq < seen):
                logger.warning("Redis lost writes (a restart, a failover): restoring the holds"
                               " known here")
                self.seen = await self._recovery.restore(
                    self._redis.pipeline(transaction=False), self._restore_args
                )
            self.seen = max(self.seen, seq)
            self._epoch = epoch
        except StoreUnavailable as error:
            if error.refused:
                logger.exception("claiming due holds failed")
            return []
        self._local.prune(fleet_now)
        _now, offset = clock.times()
        claimed = []
        for at in range(4, len(rows), 6):
            claim = (text(rows[at + 3]), float(rows[at + 4]))
            due = self._local.claimed(text(rows[at]), int(rows[at + 1]), rows[at + 2], claim,
                                      fleet_now, offset)
            if due is not None:
                lapse = int(rows[at + 5])  # CLAIM's: 0 plain, 1 own lease ran out, 2 takeover
                claimed.append(Due(due.hold, due.action, due.due - clock.skew, due.fence,
                                   lapsed=lapse > 0, takeover=lapse == _TAKEOVER))
        return claimed

    async def extend(self, lease: float, now: float | None = None) -> None:
        """Lease the holds whose renewal runs here for ``lease`` more seconds (the heartbeat).

        ``now`` is the claim's time on the fleet clock: the beat is skipped until
        half a lease after the last one, unless a safety net comes due sooner.
        At close, ``lease`` is 0: other workers take them over at once.
        Raises StoreUnavailable if Redis is unreachable.
        """
        if now is not None and now < self._next_beat and not self.beat_now:
            return
        renewing = self._local.renewing
        args = [repr(lease), self._owner, self._hold_prefix, self._time.lease_now(now)]
        for hold_id, (hold, _action, due) in list(renewing.items()):
            if hold.done or not (hold.state is HoldState.RENEWING or hold._inflight):
                del renewing[hold_id]
                continue
            args += [hold_id, str(hold._fence), repr(due)]
        if len(args) == 4:
            return
        lost = await self._link.call(self._extend([self._keys[0]], args))
        if now is not None:
            self._next_beat, self.beat_now = now + lease / 2, False
        for hold_id in cast(list[Any], lost):
            logger.info("hold %s was taken over while its renewal ran here", text(hold_id))
            renewing.pop(text(hold_id), None)

    async def next_due(self) -> float | None:
        """See :meth:`RedisStore.next_due`."""
        try:
            await self._time.sync()
            first = await self._link.call(self._redis.zrange(self._keys[0], 0, 0, withscores=True))
        except StoreUnavailable:
            return None
        if not first:
            return None
        due = float(cast(list[tuple[Any, float]], first)[0][1]) - self._time.skew
        return max(due, self._restoring_until)

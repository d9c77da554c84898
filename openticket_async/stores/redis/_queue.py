"""The due queue seen from one RedisStore: claims, the heartbeat, restart detection.

This is the scheduler's side of the store, apart from the write-backs and the
carts because it keeps state of its own across polls: per shard (``._keys``),
the epoch and write seq Redis last showed (a change means the shard lost
writes: rule 5 of stores.redis) and the restore window; and when the heartbeat
that keeps this store's renewals leased is next due (the package docstring's
theory of operation). The write-backs only report to it: the seq Redis
acknowledged, and a safety net that comes due before its lease ends.

Every claim runs the CLAIM script on the shards worth asking, all at once (on a
cluster, each on the node that serves the shard). The scheduler reads the
stores' next due time after every claim (``next_due``: each shard's head, epoch
and write counter, one pipelined read); the claim after such a read asks the
shards that had due work or had lost writes, and those written since; a claim
with no read before it asks every shard, and a store with one shard (a single
Redis, by default) claims at every pass, as it always did. So a shard's due
work is claimed by the first claim after a read that shows it: within one poll
(0.5 s) and one pass of the scheduler, and an idle fleet on a cluster runs no
script at all. The ``limit``
is split evenly between the shards asked, the odd units going to a different
shard each time, so a busy shard never starves the others; the shards that
handed out their whole share split what is left in another round. Claims come
earliest first within a shard; across shards, each shard's earliest. A shard
that cannot be reached (its primary failing over) or has write-backs still to
replay is left out of that claim; the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar, cast

from ..._exceptions import StoreUnavailable
from ..._hold import HoldState
from .. import MIN_LEASE, SHARED_POLL, Due
from ..shared import LocalHolds
from ._keys import KeyLayout
from ._link import Client, Link, is_cluster, queue_time
from ._recovery import Recovery, SaveArgs
from ._scripting import Script
from ._time import FleetClock

__all__ = ["RESTORE_WINDOW", "DueQueue", "text"]

logger = logging.getLogger("openticket_async.stores.redis")

T = TypeVar("T")

#: Seconds after a data loss during which no due work is handed out, so every
#: worker (polling twice as often) writes back what it knows first (rule 5).
RESTORE_WINDOW = MIN_LEASE
# CLAIM's lapse of a hold whose unfinished claim was another owner's (see _scripts)
_TAKEOVER = 2
# CLAIM's answer: 4 values, then this many per hold handed out
_ROW = 6


def text(value: Any) -> str:
    """A Redis reply as a str, whether the client decodes replies or not."""
    return value.decode() if isinstance(value, bytes) else str(value)


async def _each(calls: list[Coroutine[Any, Any, T]]) -> list[T | BaseException]:
    """Await ``calls`` at once (one task each); their answers or errors, in order.

    A single call is awaited in place: a one-shard store polls as it always did.
    """
    if len(calls) == 1:
        try:
            return [await calls[0]]
        except Exception as error:  # noqa: BLE001 (handed back like gather's)
            return [error]
    return await asyncio.gather(*calls, return_exceptions=True)


class _Shard:
    """What this store last saw of one shard."""

    __slots__ = ("claimed_at", "epoch", "restoring_until", "seen")

    def __init__(self) -> None:
        self.epoch: str | None = None
        self.claimed_at = -math.inf  # fleet clock
        self.restoring_until = 0.0  # this process's wall time
        #: The largest write seq the shard acknowledged to this store.
        self.seen = 0


class DueQueue:
    """The due-queue operations of one RedisStore.

    ``layout`` names the keys of every shard (see :mod:`._keys` and
    :mod:`._scripts`); ``restore_args`` builds a hold's SAVE arguments for a
    restore.
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
        layout: KeyLayout,
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
        self._layout = layout
        self._retention = retention
        self._restore_args = restore_args
        self._shards = [_Shard() for _ in range(layout.shards)]
        # where the odd units of a split limit go first: a different shard each claim
        self._turn = int.from_bytes(os.urandom(2), "big") % layout.shards
        # when the shard count is next recorded and checked (on the fleet clock): at the
        # first claim, then every half retention, so its record never lapses under a fleet
        self._layout_due = -math.inf
        # What the last next_due read showed of each shard, for the claim right after
        # it only: (head score, whether the shard lost writes); None: claim every shard.
        self._heads: list[tuple[float | None, bool]] | None = None
        self._touched: set[int] = set()  # shards written since that read
        # the heartbeat renews the leases about twice per lease, not at every poll: a
        # burst's claims poll back to back, and each beat carries every renewal in hand
        self._next_beat = -math.inf  # on the fleet clock
        #: A safety net comes due before its lease ends: beat at the next claim.
        self.beat_now = False

    def acknowledged(self, shard: int, seq: int) -> None:
        """Note a write ``shard`` acknowledged with ``seq`` (0: refused)."""
        state = self._shards[shard]
        state.seen = max(state.seen, seq)
        self._touched.add(shard)

    def _worth_claiming(self, fleet_now: float) -> list[int]:
        """The shards this claim asks: those with due work, or changed, at the last read.

        Every shard when no read came since the last claim; a store with one
        shard claims it at every pass, as it always did. A shard written since
        the read, or whose epoch or write counter said it lost writes, is asked
        too (so it restores at once), and one not asked for a quarter of the
        retention (so its epoch, which each claim keeps, never expires while the
        fleet runs). Work that came due in a shard after the read is seen by the
        read after this claim, and claimed by the next one.
        """
        heads, self._heads = self._heads, None
        touched, self._touched = self._touched, set()
        if heads is None or self._layout.shards == 1:  # one shard: claimed at every pass
            return list(range(self._layout.shards))
        stale = fleet_now - self._retention / 4
        return [
            shard for shard, (head, lost) in enumerate(heads)
            if lost or shard in touched or self._shards[shard].claimed_at < stale
            or (head is not None and head <= fleet_now)
        ]

    def shares(self, shards: list[int], limit: int) -> list[tuple[int, int]]:
        """``limit`` split between ``shards``: (shard, its share), leaving out empty shares."""
        if not shards:
            return []
        base, odd = divmod(limit, len(shards))
        start = self._turn % len(shards)
        self._turn += 1
        turned = shards[start:] + shards[:start]
        split = [(shard, base + (1 if at < odd else 0)) for at, shard in enumerate(turned)]
        return [(shard, share) for shard, share in split if share > 0]

    async def claim(self, now: float, limit: int, lease: float) -> list[Due]:
        """See :meth:`RedisStore.claim_due`; ``lease`` is the store's lease."""
        fleet_now = now + self._time.skew
        try:
            await self._check_layout(fleet_now)
            await self._recovery.replay()
        except StoreUnavailable as error:
            if error.refused:
                logger.exception("claiming due holds failed")
                return []
        skipped = self._recovery.blocked() | await self.extend(lease, fleet_now)
        open_ = [shard for shard in self._worth_claiming(fleet_now) if shard not in skipped]
        remaining = limit
        rows_by_shard: list[list[Any]] = []
        while open_ and remaining > 0:
            # a shard that handed out its whole share may have more: it shares what is left
            shares = self.shares(open_, remaining)
            answers = await _each(
                [self._claim_one(shard, share, fleet_now, lease) for shard, share in shares]
            )
            visited = {shard for shard, _share in shares}
            open_ = [shard for shard in open_ if shard not in visited]
            for (shard, share), answer in zip(shares, answers, strict=True):
                if isinstance(answer, StoreUnavailable):
                    if answer.refused:
                        logger.error("claiming due holds of shard %d failed: %s", shard, answer)
                    continue
                if isinstance(answer, BaseException):
                    raise answer
                rows_by_shard.append(answer)
                handed = (len(answer) - 4) // _ROW
                remaining -= handed
                if handed >= share:
                    open_.append(shard)
        if not rows_by_shard:
            return []
        self._local.prune(fleet_now)
        _now, offset = self._time.times()
        claimed = []
        for rows in rows_by_shard:
            for at in range(4, len(rows), _ROW):
                plan = (text(rows[at + 3]), float(rows[at + 4]))
                due = self._local.claimed(text(rows[at]), int(rows[at + 1]), rows[at + 2], plan,
                                          fleet_now, offset)
                if due is not None:
                    lapse = int(rows[at + 5])  # CLAIM's: 0 plain, 1 own lease ran out, 2 takeover
                    claimed.append(Due(due.hold, due.action, due.due - self._time.skew, due.fence,
                                       lapsed=lapse > 0, takeover=lapse == _TAKEOVER))
        claimed.sort(key=lambda due: due.due)
        return claimed

    async def _claim_one(self, shard: int, limit: int, fleet_now: float, lease: float) -> list[Any]:
        """Run CLAIM on one shard; its answer. Restores the shard if it lost writes.

        Raises StoreUnavailable if the shard cannot be reached or refuses.
        """
        clock, state, layout = self._time, self._shards[shard], self._layout
        # writes acknowledged from here on may run after the claim: not a loss
        seen, sent = state.seen, clock.local_wall()
        answer = await self._link.call(
            self._claim(
                layout.claim_keys(shard),
                [repr(fleet_now), repr(lease), str(limit), layout.hold_prefix(shard),
                 self._owner, os.urandom(8).hex(), str(self._retention),
                 layout.checkout_prefix(shard), clock.lease_now(fleet_now), state.epoch or "",
                 repr(RESTORE_WINDOW), str(seen)],
            )
        )
        rows = cast(list[Any], answer)
        if shard == 0 or not clock.skew_known():
            # one node's clock is the fleet's (a cluster's nodes keep NTP time)
            clock.observe(rows[1], sent, clock.local_wall())
        state.restoring_until = float(rows[2]) - clock.skew
        epoch, seq = text(rows[0]), int(rows[3])
        if state.epoch is not None and (epoch != state.epoch or seq < seen):
            logger.warning("Redis lost writes (a restart, a failover): restoring the holds"
                           " known here%s", f" (shard {shard})" if layout.shards > 1 else "")
            state.seen = await self._recovery.restore(self._restore_args, shard)
        state.seen = max(state.seen, seq)
        state.epoch, state.claimed_at = epoch, fleet_now
        return rows

    async def _check_layout(self, now: float) -> None:
        """Record this store's shard count, or refuse to claim if another is recorded.

        The count is written (and its expiry pushed back a retention) at the first
        claim and then every half retention, so it lapses at most a retention after
        the last store on the prefix stopped claiming. On a single Redis a count may sit
        under either spelling of the marker (``P shards`` for one shard, untagged;
        ``P{0}shards`` tagged): both are read, or stores of one shard and of
        several would each find only their own. Raises StoreUnavailable (refused)
        on a mismatch: two counts on one prefix put one cart in two shards.
        """
        if now < self._layout_due:
            return
        count = str(self._layout.shards)
        key, *other_spellings = self._layout.markers(cluster=is_cluster(self._redis))
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(key, count, nx=True)
        pipe.get(key)
        pipe.expire(key, self._retention)
        for other in other_spellings:
            pipe.get(other)
        _set, found, _expire, *others = await self._link.call(pipe.execute())
        for recorded in (found, *others):
            if recorded is not None and text(recorded) != count:
                raise StoreUnavailable(f"the stores on prefix {self._layout.prefix!r} use"
                                       f" {text(recorded)} shards, this one {count}",
                                       refused=True)
        self._layout_due = now + self._retention / 2

    async def extend(self, lease: float, now: float | None = None) -> set[int]:
        """Lease the holds whose renewal runs here for ``lease`` more seconds (the heartbeat).

        ``now`` is the claim's time on the fleet clock: the beat is skipped until
        half a lease (less half a poll) after the last one, unless a safety net
        comes due sooner.
        Returns the shards that could not be reached (their claims wait). At
        close, ``lease`` is 0: other workers take them over at once; then raises
        StoreUnavailable if a shard is unreachable.
        """
        if now is not None and now < self._next_beat and not self.beat_now:
            return set()
        renewing, layout = self._local.renewing, self._layout
        by_shard: dict[int, list[str]] = {}
        for hold_id, (hold, _action, due) in list(renewing.items()):
            if hold.done or not (hold.state is HoldState.RENEWING or hold._inflight):
                del renewing[hold_id]
                continue
            by_shard.setdefault(layout.shard_of(hold.cart_id), []).extend(
                [hold_id, str(hold._fence), repr(due)]
            )
        if not by_shard:
            return set()
        lease_now = self._time.lease_now(now)
        shards = sorted(by_shard)
        answers = await _each([
            self._link.call(self._extend(
                [layout.queue(shard)],
                [repr(lease), self._owner, layout.hold_prefix(shard), lease_now,
                 *by_shard[shard]],
            )) for shard in shards
        ])
        failed: set[int] = set()
        for shard, answer in zip(shards, answers, strict=True):
            if isinstance(answer, StoreUnavailable):
                if now is None:
                    raise answer
                failed.add(shard)
                continue
            if isinstance(answer, BaseException):
                raise answer
            # a safety net the beat made due is handed back by this claim, as before the beat
            self._touched.add(shard)
            for hold_id in cast(list[Any], answer):
                logger.info("hold %s was taken over while its renewal ran here", text(hold_id))
                renewing.pop(text(hold_id), None)
        if now is not None and not failed:
            # the beat is due half a lease on, less half a poll: a poll that comes a
            # little early then beats all the same, and the gap between two beats
            # stays under half a lease plus half a poll: 3/4 of the shortest lease
            self._next_beat, self.beat_now = now + lease / 2 - SHARED_POLL / 2, False
        return failed

    async def next_due(self) -> float | None:
        """See :meth:`RedisStore.next_due`."""
        layout, clock = self._layout, self._time
        try:
            await clock.sync()
            pipe = self._redis.pipeline(transaction=False)
            queue_time(pipe, layout.queue(0))  # the skew, as a claim of shard 0 takes it
            for shard in range(layout.shards):
                keys = layout.claim_keys(shard)  # queue, epoch, restoring, seq
                pipe.zrange(keys[0], 0, 0, withscores=True)
                pipe.get(keys[1])
                pipe.get(keys[3])
            # acknowledged from here on may be counted before the answer: not a loss
            seen = [state.seen for state in self._shards]
            sent = clock.local_wall()
            (seconds, micros), *answers = cast(list[Any], await self._link.call(pipe.execute()))
        except StoreUnavailable:
            return None
        clock.observe(int(seconds) + int(micros) / 1e6, sent, clock.local_wall())
        heads: list[tuple[float | None, bool]] = []
        found = []
        for shard, state in enumerate(self._shards):
            head, epoch, seq = answers[3 * shard:3 * shard + 3]
            score = float(head[0][1]) if head else None
            lost = state.epoch is not None and (
                epoch is None or text(epoch) != state.epoch or int(seq or 0) < seen[shard]
            )
            heads.append((score, lost))
            if score is not None:
                found.append(max(score - clock.skew, state.restoring_until))
        self._heads = heads
        return min(found, default=None)

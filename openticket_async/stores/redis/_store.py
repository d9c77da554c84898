"""RedisStore: the store's operations on top of the link, scripts, registry, recovery and queue.

Its theory of operation and the rules deployments must know are the package
docstring (``openticket_async.stores.redis``): that is the door users read.
"""

from __future__ import annotations

import logging
import math
import os
import weakref
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING

from ..._clock import Clock
from ..._config import HoldPolicy, seconds
from ..._exceptions import InvalidArgument, StoreUnavailable, UsageError
from ..._hold import Hold, HoldState
from .. import MIN_LEASE, CartClaim, CartTaken, Due, EventSink, claim_lease
from ..shared import CartEvent, LocalHolds, encode_hold
from ._batch import ScriptBatch
from ._checkouts import CheckoutClaims
from ._events import EventRelay
from ._keys import MAX_SHARDS, KeyLayout
from ._link import Client, close, connect, is_cluster, link_for
from ._pacing import PacedClient
from ._queue import DueQueue, text
from ._recovery import Recovery
from ._scripting import ScriptSet
from ._scripts import STORE_SCRIPTS
from ._time import FleetClock
from ._tokens import RedisTokenStore

if TYPE_CHECKING:
    from ..._ports import ReservingClient

__all__ = ["CLUSTER_SHARDS", "RedisStore", "lease_for"]

logger = logging.getLogger("openticket_async.stores.redis")

#: The default shard count on a cluster: enough to spread the queues over a few
#: primaries, few enough that a claim (one script per shard) stays cheap.
CLUSTER_SHARDS = 16

# Terminal states the application decides; fencing never blocks them.
_APPLICATION_ENDS = frozenset({HoldState.RELEASED, HoldState.ORDERED})


def lease_for(policy: HoldPolicy) -> float:
    """The default claim lease for ``policy``: ``max(renew_before / 3, 1 s)``."""
    return claim_lease(policy)


class RedisStore:
    """The shared :class:`~openticket_async.stores.ReservationStore` on Redis (``redis.asyncio``).

    ``redis`` is a ``redis.asyncio.Redis`` or ``redis.asyncio.cluster.RedisCluster``
    client (the store never closes it) or a URL (the store makes and closes its
    own client): ``redis://``, ``rediss://``, ``unix://``, ``redis+sentinel://``
    or ``redis+cluster://`` (syntax in docs/redis.md). ``prefix`` separates
    deployments sharing one Redis. ``shards`` is how many parts the state is
    split into (on a cluster, one hash slot each): 1 by default on one Redis, 16
    on a cluster, at most 256; every worker on a prefix must use the same.
    ``lease`` (seconds or timedelta) is how long a claim protects a hold; without
    it, ``lease_for(policy or HoldPolicy())``. ``retention`` (seconds or
    timedelta, an hour by default) is how long abandoned data stays before Redis
    drops it; ``stream_length`` how many recent events each cart's stream keeps.
    Hold metadata travels as JSON (string keys, JSON values; a tuple comes back a list).

    Raises InvalidArgument for a bad argument or a URL the store cannot use; its
    message never quotes the URL, which may carry a password.
    """

    shared = True

    def __init__(
        self,
        redis: Client | str,
        *,
        prefix: str = "openticket:",
        lease: float | timedelta | None = None,
        policy: HoldPolicy | None = None,
        retention: float | timedelta = 3600.0,
        stream_length: int = 256,
        shards: int | None = None,
    ) -> None:
        if not isinstance(prefix, str) or not prefix:
            raise InvalidArgument("prefix must be a non-empty string")
        if shards is not None and (type(shards) is not int or not 1 <= shards <= MAX_SHARDS):
            raise InvalidArgument(f"shards must be an int from 1 to {MAX_SHARDS}, got {shards!r}")
        self._lease_given = lease is not None or policy is not None
        self._lease = lease_for(policy or HoldPolicy()) if lease is None else seconds(lease)
        if not self._lease > 0:
            raise InvalidArgument(f"lease must be > 0, got {lease!r}")
        self._retention = math.ceil(seconds(retention))
        if self._retention < 1:
            raise InvalidArgument(f"retention must be at least 1 s, got {retention!r}")
        if type(stream_length) is not int or stream_length < 1:
            raise InvalidArgument(f"stream_length must be an int >= 1, got {stream_length!r}")
        if isinstance(redis, str):
            self._redis, self._own_client = connect(redis), True
        elif isinstance(redis, Client):
            self._redis, self._own_client = redis, False
        else:
            raise InvalidArgument("redis must be a redis.asyncio client or a URL")
        self.prefix = prefix
        cluster = is_cluster(self._redis)
        count = shards if shards is not None else (CLUSTER_SHARDS if cluster else 1)
        self._keys = KeyLayout(prefix, count, tagged=cluster or count > 1)
        self._link = link_for(self._redis)
        self._scripts = ScriptSet(self._redis, self._link, STORE_SCRIPTS)
        self._writes = ScriptBatch(
            self._redis, self._link, {self._scripts["save"]: self._scripts["saves"]}
        )
        #: This store's name in Redis (claim owner) and in the events it publishes.
        self.owner = os.urandom(8).hex()
        self._events = EventRelay(
            self._redis, self._link, self._keys.events, script=self._scripts["events"],
            shard_of=self._keys.shard_of, origin=self.owner, maxlen=stream_length,
            ttl=self._retention,
        )
        #: The relay: each event the manager emits goes to its cart's stream.
        self.event_sink: EventSink = self._events
        self._clock: Clock | None = None
        self._time = FleetClock(self._redis, self._link)
        self._local = LocalHolds(keep_after_due=3 * self._lease + 30.0, logger=logger)
        self._recovery = Recovery(
            self._redis, self._link, self._scripts, self._local, self._keys.shard_of
        )
        self._due = DueQueue(
            self._redis, self._link, self._scripts, time=self._time, local=self._local,
            recovery=self._recovery, owner=self.owner, layout=self._keys,
            retention=self._retention,
            restore_args=lambda hold, action, due: self._save_args(
                hold, action, due, hold._fence, "restore"
            ),
        )
        # the seq of each hold's last write acknowledged here (see SAVE's restore rule)
        self._acked: weakref.WeakKeyDictionary[Hold, int] = weakref.WeakKeyDictionary()
        self._closed = False
        self._checkouts = CheckoutClaims(
            self._link, self._scripts, owner=self.owner, key=self._keys.checkout,
            cart_key=self._keys.cart,
            hold_prefix=lambda cart_id: self._keys.hold_prefix(self._keys.shard_of(cart_id)),
            retention=self._retention, lease_now=self._time.lease_now,
        )

    @property
    def lease(self) -> float:
        """Seconds a claim protects a hold (see the lease rule)."""
        return self._lease

    @property
    def shards(self) -> int:
        """How many shards (hash slots on a cluster) the state is split into."""
        return self._keys.shards

    @property
    def available(self) -> bool:
        """False while Redis cannot be reached: the last command failed to connect or timed
        out (see :class:`~openticket_async.stores.MonitoredStore`); True once one answers."""
        return not self._link.down

    @property
    def round_trips(self) -> int:
        """Redis round trips this store has awaited so far (a pipeline counts once)."""
        return self._link.calls

    def __repr__(self) -> str:
        return (f"RedisStore({self._link.where!r}, prefix={self.prefix!r}, lease={self._lease!r},"
                f" shards={self._keys.shards})")

    # -- clock ---------------------------------------------------------------------------

    def bind(self, clock: Clock, policy: HoldPolicy | None = None) -> None:
        """Take the manager's clock (and policy); the clock gets the link as a busy probe.

        A virtual clock then never moves time while a store command is on the
        wire. Without an explicit ``lease`` (or ``policy``) the lease follows
        ``policy``. Raises UsageError once the store is closed.
        """
        if self._closed:
            raise UsageError("the RedisStore is closed")
        if policy is not None and not self._lease_given:
            self._lease = lease_for(policy)
            self._local.keep_after_due = 3 * self._lease + 30.0
        elif policy is not None and self._lease + MIN_LEASE / 2 >= policy.renew_before:
            logger.warning(
                "lease %.3g s leaves no time to take over a renewal before the deadline "
                "(renew_before %.3g s); see the lease rule", self._lease, policy.renew_before
            )
        self._unprobe()
        self._clock = self._events.clock = clock
        self._time.bind(clock)
        clock.add_busy_probe(self._link)

    def _unprobe(self) -> None:
        if self._clock is not None:
            self._clock.remove_busy_probe(self._link)

    def _times(self) -> tuple[float, float]:
        """(now on the fleet clock, offset from the manager's clock to it); see ``._time``."""
        return self._time.times()

    def _save_args(
        self, hold: Hold, action: str, due: float, fence: int, mode: str
    ) -> tuple[list[bytes], list[bytes]]:
        """The SAVE script's keys and arguments (``due`` on the fleet clock), encoded.

        Only a restore writes a hold whose renewal runs here: it is then leased
        to this store, and a worker that claims it after this one died renews it.
        """
        now, offset = self._times()
        lease = repr(self._lease) if hold.id in self._local.renewing else ""
        last = due if hold.reservation is None else max(due, hold.reservation.deadline + offset)
        ttl = max(math.ceil(last - now), 0) + self._retention
        fields = (f"{fence},{action},{due!r},{lease},{ttl},{self.owner},"
                  f"{self._time.lease_now()},{mode},{self._acked.get(hold, 0)}")
        args = [hold.id.encode(), hold.cart_id.encode(), encode_hold(hold, offset),
                fields.encode()]
        return self._keys.write_keys(hold.cart_id, hold.id), args

    # -- writes -----------------------------------------------------------------------

    async def save(self, hold: Hold, action: str, due: float, fence: int = 0) -> bool:
        """Make ``action`` at ``due`` (epoch seconds, this process's) the hold's one pending action.

        Returns False if the write-back is stale (fencing rule) or the store is
        closed. Raises InvalidArgument if the hold's metadata is not JSON, and
        StoreUnavailable if Redis refuses the write, or is unreachable for a
        hold's first save; later saves are kept and replayed once Redis answers.
        """
        if self._closed:
            return False
        local = self._local
        if hold.state is HoldState.RENEWING and hold.id in local.renewing:
            # the safety net of a renewal running here: the claim stands for it
            due += self._time.skew
            local.renewing[hold.id] = (hold, action, due)
            local.plans[hold] = (action, due)
            if due < self._times()[0] + self._lease:  # before the lease ends: say so now
                self._due.beat_now = True
            return True
        local.renewing.pop(hold.id, None)
        first = not local.knows(hold)
        if first:  # a hold known here was written or read here: the skew is known
            await self._time.sync()
        due += self._time.skew  # onto the fleet clock
        keys, args = self._save_args(hold, action, due, fence, "save")
        local.planned(hold, action, due)
        if self._recovery.keeps(hold.id):
            self._recovery.keep(hold, keys, args, forget=False)
            return True
        shard = self._keys.shard_of(hold.cart_id)
        try:
            accepted = await self._writes.run(self._scripts["save"], keys, args, shard)
        except StoreUnavailable as error:
            if first or error.refused:
                local.unknown(hold)
                raise
            self._recovery.keep(hold, keys, args, forget=False)
            return True
        if accepted:
            self._due.acknowledged(shard, int(accepted))
            self._acked[hold] = int(accepted)
        return local.written(hold, due, accepted=bool(accepted), first=first)

    async def forget(self, hold: Hold, fence: int = 0) -> bool:
        """Remove a hold that reached its terminal state (see the fencing rule).

        Never raises for an unreachable Redis: the removal is replayed later.
        Returns False only when the fencing rule refused it: another worker (never
        this store) has claimed the hold since and decides how it ends.
        """
        known = self._local.knows(hold)
        self._local.ended(hold)
        if self._closed or not known:
            return True  # never written by this store: nothing to remove
        force = "1" if hold.state in _APPLICATION_ENDS else "0"
        keys = self._keys.write_keys(hold.cart_id, hold.id)
        args = [str(value).encode() for value in
                (hold.id, fence, hold.state.value, force, self._retention, self.owner)]
        if self._recovery.keeps(hold.id):
            self._recovery.keep(hold, keys, args, forget=True)
            return True
        shard = self._keys.shard_of(hold.cart_id)
        try:
            done = await self._writes.run(self._scripts["forget"], keys, args, shard)
        except StoreUnavailable as error:
            if error.refused:
                logger.exception("the end of hold %s could not be recorded", hold.id)
                return True
            self._recovery.keep(hold, keys, args, forget=True)
            return True
        self._due.acknowledged(shard, int(done))
        if not done:
            logger.info("hold %s belongs to another worker: its end here was not recorded", hold.id)
        return bool(done)

    # -- the due queue -----------------------------------------------------------------

    async def claim_due(self, now: float, limit: int) -> list[Due]:
        """Claim up to ``limit`` actions due at ``now`` (epoch seconds), earliest first.

        ``now`` and the due times handed out are this process's wall time; in
        Redis they are on the fleet clock (see ``._time``). Never raises for an
        unreachable Redis: nothing is due until it answers.
        """
        if self._closed:
            return []
        return await self._due.claim(now, limit, self._lease)

    async def next_due(self) -> float | None:
        """When the earliest entry is due (epoch seconds, this process's); None if none or
        unreachable."""
        if self._closed:
            return None
        return await self._due.next_due()

    # -- carts ------------------------------------------------------------------------

    async def cart_holds(self, cart_id: str) -> list[Hold]:
        """The cart's live holds, oldest first, as this store's Hold objects.

        Holds known here that another process ended take their final state.
        Raises StoreUnavailable if Redis is unreachable, UsageError once closed.
        """
        if self._closed:
            raise UsageError("the RedisStore is closed")
        await self._time.sync()
        _now, offset = self._times()
        ids = [text(i) for i in await self._link.call(
            self._redis.zrange(self._keys.cart(cart_id), 0, -1)
        )]
        everyone = ids + sorted(self._local.carts.get(cart_id, set()).difference(ids))
        pipe = self._redis.pipeline(transaction=False)
        fields = ["fence", "data", "ended", "action", "due"]
        for hold_id in everyone:
            pipe.hmget(self._keys.hold(cart_id, hold_id), fields)
        rows = await self._link.call(pipe.execute()) if everyone else []
        holds: list[Hold] = []
        for hold_id, (fence, data, ended, action, due) in zip(everyone, rows, strict=True):
            if ended is not None:
                self._local.ended_elsewhere(hold_id, text(ended))
            elif data is not None:
                plan = (text(action), float(due))
                hold = self._local.loaded(hold_id, int(fence), data, plan, offset)
                if hold is not None:
                    holds.append(hold)
        self._local.cart_loaded(cart_id, holds)
        return holds

    # -- checkout claims --------------------------------------------------------------

    async def claim_cart(self, cart_id: str, lease: float) -> CartClaim | CartTaken:
        """Claim cart ``cart_id`` for a checkout for ``lease`` seconds (see ``._checkouts``).

        Taken while another claim of it runs, or while another worker has one
        of its holds in hand. Raises StoreUnavailable if Redis is unreachable,
        UsageError once closed.
        """
        self._check_usable()
        return await self._checkouts.claim(cart_id, lease)

    async def extend_cart_claim(self, claim: CartClaim) -> bool:
        """Make ``claim`` last its lease from now; False if it is not held any more.

        Raises StoreUnavailable if Redis is unreachable, UsageError once closed.
        """
        self._check_usable()
        return await self._checkouts.extend(claim)

    async def release_cart(self, claim: CartClaim) -> bool:
        """End ``claim``; False if it lapsed and the cart was claimed again since.

        Raises StoreUnavailable if Redis is unreachable (the claim then lapses
        by itself), UsageError once closed.
        """
        self._check_usable()
        return await self._checkouts.release(claim)

    def _check_usable(self) -> None:
        if self._closed:
            raise UsageError("the RedisStore is closed")

    # -- events -----------------------------------------------------------------------

    def watch(
        self, cart_id: str, *, since: str | None = None, block: float = 1.0
    ) -> AsyncIterator[CartEvent]:
        """Iterate over the events of cart ``cart_id``, from any process, as they happen.

        ``since`` is the ``id`` of the last event already seen (None: from now on).
        The iteration never ends by itself; it raises StoreUnavailable if Redis
        cannot be reached (resume with ``since=last_event.id``).
        """
        return self._events.watch(cart_id, since, block)

    def token_store(self, name: str = "default", **options: float) -> RedisTokenStore:
        """A :class:`RedisTokenStore` on this store's Redis and prefix.

        ``options`` are its ``lock_ttl`` and ``wait``; raises InvalidArgument for bad ones.
        """
        return RedisTokenStore(self._redis, key=f"{self.prefix}token:{name}", **options)

    def paced(
        self,
        client: ReservingClient,
        *,
        calls_per_second: float | Mapping[str, float] | None = None,
        burst: int = 1,
    ) -> PacedClient:
        """``client`` with its reserves and orders paced per shop across the fleet.

        Give the result to the manager in place of ``client``. A 429 seen by any
        worker holds every worker's calls to that shop off for its Retry-After;
        ``calls_per_second`` (one ceiling for every shop, or per shop GUID) caps
        the fleet's calls to a shop, ``burst`` of them at once after a quiet
        spell. See ``._pacing``. Raises InvalidArgument for a bad ceiling or burst.
        """
        return PacedClient(
            client, link=self._link, scripts=self._scripts, time=self._time,
            key=f"{self.prefix}pace:", calls_per_second=calls_per_second, burst=burst,
            ttl=self._retention,
        )

    # -- closing ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Hand renewals in flight to other workers, flush what is queued, release Redis.

        Best effort and bounded in time: never raises for an unreachable Redis.
        """
        if self._closed:
            return
        try:
            await self._recovery.replay()
            if self._clock is not None:
                await self._due.extend(0.0)
        except StoreUnavailable as error:
            logger.warning("closing the RedisStore: %s", error)
        self._closed = True
        await self._events.aclose(grace=1.0)
        self._unprobe()
        self._local.clear()
        self._recovery.clear()
        if self._own_client:
            await close(self._redis)

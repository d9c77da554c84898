"""RedisStore: holds, carts and the due queue shared by every worker process.

Theory of operation
-------------------
Each live hold is one Redis hash (its JSON record, fencing token, claim owner and
lease, pending action) and one member of a sorted set, the due queue, scored by
the action's due time in epoch seconds on the *fleet clock*, Redis's own
``TIME`` (:mod:`._time`), so the time means the same in every process whatever
its host's clock says. A cart is a sorted set of its hold ids. Layout and
scripts: :mod:`._scripts`.

Every manager's scheduler polls :meth:`RedisStore.claim_due`. One Lua script
takes up to ``limit`` due entries and, for each, counts its fencing token up,
records this store as owner and pushes the entry's score to ``now + lease`` in
one atomic step; the manager acts and writes back with ``save(..., fence)``.
A worker that dies between claim and write-back leaves entries that come due
again when their lease runs out, and any worker picks them up.

While a renewal is on the wire the manager's write-back is a *safety net* (warn
or drop at the deadline, with the hold RENEWING). The store keeps that one in
memory and the hold leased in Redis instead: the record still holds the claimed
``renew`` action, and the score is ``min(safety-net due, now + lease)``, renewed
by a heartbeat on every ``claim_due`` of the renewing store. A live worker keeps
its lease (and gets its own safety net back when that comes due); a dead one's
lapses after at most ``lease``, and the next claimer gets the ``renew`` again,
long before the reservation drops. One write per renewal reaches Redis: the
next plan, once the renewal came back; the write-backs made in one turn of the
event loop (a burst of renewals coming back) share one pipeline, one round trip,
and those of one shard one script call (SAVES).

Rules (the ones deployments must know)
--------------------------------------
1. *Lease rule*: ``lease + poll + p99 reserve latency < renew_before - margin``,
   where ``poll`` is how often a manager on a shared store polls (0.5 s). The
   default lease is ``max(renew_before / 3, 1 s)`` of the policy given (or of
   ``HoldPolicy()``); :func:`lease_for` computes it.
2. *Fencing rule*: a write-back carrying an older fence than the hold's latest
   claim is refused: ``save`` returns False, and ``forget`` of a hold the
   scheduler ended (LOST, EXPIRED) leaves it to another worker that claimed it
   since (this one emitted its end already; a claim of its own never refuses
   it: that claim hands out nothing for a hold that ended). The application's
   decisions (RELEASED, ORDERED) always win, whatever the fence. A renewal is done twice
   only when the renewing worker stalls (or its renewal takes) longer than its
   lease: both reserve, the second's write-back wins, the first's is refused
   and its extra reservation just drops after the TTL. No hold is lost by it.
3. *Identity*: one :class:`Hold` object per hold id per store (a weak-value
   registry): claims and ``cart_holds`` update it in place, so events keep
   identity. A hold whose renewal runs in this process is never overwritten.
4. *Outages*: the scheduler's calls (``claim_due``, ``next_due``) never raise
   for an unreachable Redis: nothing is due meanwhile. Write-backs of known holds
   are kept in memory and replayed, in order, once Redis answers. A new hold
   (its first save), ``cart_holds``, ``watch`` and the token store raise
   :class:`StoreUnavailable`.
5. *Restarts*: the ``epoch`` key disappears with Redis's data. When a claim finds
   a new epoch, every store writes back the holds it knows (the ones it wrote
   last, and every hold object still alive in it) with restore semantics: only
   where the record is missing or has a smaller fence. The first claim to find
   the data gone opens a *restore window* (``RESTORE_WINDOW``, 1 s: two polls)
   in which no due work is handed out, so the freshest copy (the highest
   fence) is in place before anyone acts; a renewal on the wire is restored
   leased to its worker. So a restart costs at most one extra reserve per
   hold (a worker whose fresh copy arrives after the window), and none when
   every worker polls in time. With persistence, the data and the epoch
   survive and nothing needs restoring.
6. *TTLs*: every key expires: a hold's hash ``retention`` after its due time or
   deadline, whichever is later (renewed at each save); tombstones and event
   streams ``retention`` after their last write; the queue, cart and counter
   keys with the longest-lived hold they serve.

7. *Clocks*: leases are set and checked with Redis's ``TIME`` inside the
   scripts, and each store shifts its due times by its measured skew to Redis
   (off by at most half a claim's round trip). Workers' wall clocks may differ
   by any amount; a step of a worker's clock is followed within one poll.

8. *Checkout claims*: a checkout claims its cart (:mod:`._checkouts`) with a
   lease of ``lease_for(policy)`` on Redis's own clock, extended by the
   checking-out manager's scheduler. While it runs, no worker (the claimer
   included) is handed the cart's holds' due work: it is put back to the
   claim's end; a second checkout raises ``CheckoutInProgress``; and the claim
   is refused while another worker has one of the cart's holds in hand (the
   checkout waits for that renewal). A dead claimer's claim lapses within one
   lease. Like the fencing rule, a claimer stalled longer than its lease may
   overlap the next one, and a claimer that dies after sending its order
   leaves its outcome unknown: give a cart's checkouts one ``idempotency_key``
   so a server that honours it can tell a repeated order (whether OpenTicket
   does is not verified).

9. *Shards and Redis Cluster*: the state is split into ``shards`` (:mod:`._keys`):
   a cart's holds, checkout claim and events live in the shard its id hashes
   to, each shard has its own due queue, write counter and epoch, and every
   script touches one shard's keys, which share a hash tag (one cluster slot).
   One shard on a single Redis (the keys it always had), 16 on a cluster
   (``redis+cluster://`` URL or a ``RedisCluster`` client). A poll reads every
   shard's head (one pipelined read) and claims from the shards with due work,
   all at once (a one-shard store claims at every poll, as it always did), so
   each shard's due work is claimed within one poll; a shard that lost writes
   restores its own holds (rule 5, per shard). Every worker on a
   prefix must use the same shard count: a store refuses to claim when another
   count is recorded.
"""

from __future__ import annotations

from ..._exceptions import StoreUnavailable
from ..shared import CartEvent
from ._pacing import PacedClient
from ._store import RedisStore, lease_for
from ._tokens import RedisTokenStore

__all__ = [
    "CartEvent",
    "PacedClient",
    "RedisStore",
    "RedisTokenStore",
    "StoreUnavailable",
    "lease_for",
]

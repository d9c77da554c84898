"""A fleet of worker processes on a three-primary Redis Cluster, on real time.

As in test_redis_fleet_processes (whose helpers these tests use): the fake
OpenTicket server runs here on 127.0.0.1 with a 6-second reservation TTL; the
workers (tests/redis_worker.py) are separate processes, each with its own
manager and a RedisStore on the cluster (16 shards). After each scenario: no
hold lost (a reservation at the server for every open hold at every moment)
and the duplicate reserves counted.

A worker killed mid-renewal may leave a reserve at the server for each hold it
had in hand, its answer read or not: those holds are read from the cluster
right after the kill (the victim can claim nothing more; its claims last a
lease after its last heartbeat), not guessed from what the victim printed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from conftest import ClusterGroup
from redis.asyncio.cluster import RedisCluster
from redis_processes import Sampler, Worker
from test_redis_fleet_processes import POLICY, TTL, config, fill, judge, renewed, until_renewed

from openticket_async import HoldPolicy, SystemClock
from openticket_async._scheduler import SHARED_POLL
from openticket_async.stores.redis import lease_for
from openticket_async.stores.redis._keys import KeyLayout
from openticket_async.stores.redis._store import CLUSTER_SHARDS
from openticket_async.testing import FakeOpenTicket

pytestmark = [pytest.mark.redis, pytest.mark.slow]

LEASE = lease_for(HoldPolicy(**POLICY))
#: Real seconds a loaded machine may add to a takeover (process scheduling, a reserve).
SLACK = 1.0


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeOpenTicket[SystemClock]]:
    async with FakeOpenTicket(SystemClock(), reservation_ttl=TTL) as server:
        yield server


@pytest_asyncio.fixture
async def cluster(redis_cluster: ClusterGroup) -> AsyncIterator[RedisCluster]:
    """A client of the session's cluster, its slot map already read (no round trip more
    when the test first uses it)."""
    async with RedisCluster(host="127.0.0.1", port=redis_cluster.nodes[0].port) as client:
        yield client


def shard(cart_id: str) -> int:
    return KeyLayout("", CLUSTER_SHARDS, tagged=True).shard_of(cart_id)


async def claimed_by(cluster: RedisCluster, owner: str, keys: dict[str, str]) -> set[str]:
    """The holds (id: hash key) whose latest claim is ``owner``'s and not written back.

    A claim writes its owner and a lease end into the hold's hash, a write-back
    sets the lease to 0, and another worker's claim writes its own name.
    """
    pipe = cluster.pipeline()
    for key in keys.values():
        pipe.hmget(key, ["owner", "lease"])
    rows = await pipe.execute()
    return {
        hold for hold, (by, lease) in zip(keys, rows, strict=True)
        if by is not None and by.decode() == owner and float(lease) > 0
    }


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_two_workers_on_a_cluster_share_every_shard_and_double_nothing(
    fake: FakeOpenTicket[SystemClock], redis_cluster_url: str, redis_prefix: str
) -> None:
    shop = fake.add_shop()
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(16)]
    sampler = Sampler(fake)
    workers = [
        await Worker.start(name, config(fake, redis_cluster_url, redis_prefix)) for name in "ab"
    ]
    carts = [f"cart-{number}" for number in range(8)]
    try:
        for worker in workers:
            await worker.expect(lambda r: r["ev"] == "ready")
        holds = []
        for number, cart in enumerate(carts):
            holds += await fill(workers[number % 2], shop, cart, tickets[2 * number:][:2])
        await until_renewed(workers, 64, timeout=40)
        for cart in carts:
            await workers[0].send({"cmd": "close", "shop": shop.guid, "cart": cart})
            await workers[0].expect(lambda r, c=cart: r["ev"] == "closed" and r["cart"] == c)
        closed_at = fake.clock.now()
    finally:
        for worker in workers:
            await worker.stop()
        await sampler.stop()
    reserves, renewals = judge(holds, workers, sampler, closed_at)
    shards_by_worker = {
        worker.name: {shard(e["cart"]) for e in renewed([worker])} for worker in workers
    }
    print(f"\ncluster: renewals={len(renewed(workers))} reserves={len(sampler.seen)}"
          f" duplicate_reserves={reserves} duplicate_renewals={renewals}"
          f" shards_per_worker={ {k: len(v) for k, v in shards_by_worker.items()} }")
    assert (reserves, renewals) == (0, 0)
    assert all(len(shards) >= 2 for shards in shards_by_worker.values())
    assert set().union(*shards_by_worker.values()) == {shard(cart) for cart in carts}


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_renewal_killed_mid_flight_on_a_cluster_is_taken_over_within_one_lease(
    fake: FakeOpenTicket[SystemClock], cluster: RedisCluster, redis_cluster_url: str,
    redis_prefix: str,
) -> None:
    shop = fake.add_shop()
    tickets = [fake.add_ticket(shop, stock=3).guid for _ in range(8)]
    sampler = Sampler(fake)
    layout = KeyLayout(redis_prefix, CLUSTER_SHARDS, tagged=True)
    workers = [
        await Worker.start(name, config(fake, redis_cluster_url, redis_prefix,
                                        stall=name == "victim"))
        for name in ("victim", "first", "second")
    ]
    victim, first, second = workers
    carts = {"cart-v1": victim, "cart-v2": victim, "cart-f1": first, "cart-f2": first}
    try:
        for worker in workers:
            await worker.expect(lambda r: r["ev"] == "ready")
        ready = await victim.expect(lambda r: r["ev"] == "ready")  # its name in Redis
        holds, keys = [], {}
        for number, (cart, owner) in enumerate(carts.items()):
            added = await fill(owner, shop, cart, tickets[2 * number:][:2])
            holds += added
            keys |= {hold["id"]: layout.hold(cart, hold["id"]) for hold in added}
        stalled = await victim.expect(lambda r: r["ev"] == "stalled", timeout=20)
        victim.kill()  # mid-renewal: reserved on the server, not yet written back
        killed_at = fake.clock.now()
        # another renewal of the victim's may have been reserved at the server and not
        # answered yet, with no "stalled" record: its hold is in hand all the same
        in_hand = await claimed_by(cluster, ready["owner"], keys)
        orphan = next(hold for hold in holds if hold["ticket"] == stalled["ticket"])

        def renewed_twice_since_the_kill() -> bool:
            since = Counter(e["hold"] for e in renewed([first, second]) if e["t"] > killed_at)
            return all(since[hold["id"]] >= 2 for hold in holds)

        async with asyncio.timeout(30):
            while not renewed_twice_since_the_kill():
                await asyncio.sleep(0.05)  # real time runs the scenario; this only looks
        for cart in carts:
            await second.send({"cmd": "close", "shop": shop.guid, "cart": cart})
            await second.expect(lambda r, c=cart: r["ev"] == "closed" and r["cart"] == c)
        closed_at = fake.clock.now()
    finally:
        for worker in (first, second):
            await worker.stop()
        await victim.process.wait()
        await victim.stop()  # dead already: reads what it wrote to the end
        await sampler.stop()
    survivors = [first, second]
    takeover = min(
        e["t"] for e in renewed(survivors) if e["hold"] == orphan["id"] and e["t"] > killed_at
    ) - killed_at
    reserves, renewals = judge(holds, workers, sampler, closed_at)
    stalls = sum(1 for record in victim.records if record["ev"] == "stalled")
    print(f"\ncluster kill: takeover={takeover:.2f} s (lease {LEASE} s) stalled={stalls}"
          f" in_hand={len(in_hand)} duplicate_reserves={reserves} duplicate_renewals={renewals}")
    assert takeover <= LEASE + SHARED_POLL + SLACK
    # each hold the victim had in hand may have a reserve at the server that nobody
    # writes back: its next reserve, by a survivor, may come within the duplicate window
    assert orphan["id"] in in_hand
    assert reserves <= len(in_hand)
    assert stalled["reservation"] not in {e["new"] for e in renewed(survivors)}

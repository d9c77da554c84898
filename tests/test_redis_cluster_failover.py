"""RedisStore on a Redis Cluster whose primaries fail over to their replicas.

Each test starts its own cluster of three primaries with a replica each
(tests/conftest.py, ``ClusterGroup(..., replicas=1)``), since a failover changes
which node serves what. The stores run on a FakeClock; only the failover itself
takes real time: a coordinated ``CLUSTER FAILOVER`` a fraction of a second, a
killed primary about two (it is found down after the 1 s node timeout, then its
replica is elected).

What must hold across a failover: every hold written before it is still there,
its plan comes due once at its time, and the store keeps working on the new
primaries (whose script cache may not hold the store's scripts) without being
made again.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from conftest import ClusterGroup
from redis.exceptions import ResponseError

from openticket_async import Hold
from openticket_async.stores.redis import RedisStore, StoreUnavailable
from openticket_async.testing import FakeClock
from openticket_async.testing.store_conformance import StoreKit

pytestmark = [pytest.mark.redis, pytest.mark.slow]

LEASE = 5.0
#: Carts enough that every one of the 16 shards, so every primary, gets some.
CARTS = 48
#: Real seconds a failover may take (a killed primary: down after 1 s, then election).
FAILOVER_WITHIN = 20.0


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[ClusterGroup]:
    """A cluster of this test's own: three primaries, one replica each."""
    group = ClusterGroup(tmp_path / "cluster", replicas=1)
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest_asyncio.fixture
async def kit(replicated: ClusterGroup, redis_prefix: str) -> AsyncIterator[StoreKit]:
    kit = StoreKit(
        lambda: RedisStore(replicated.url, prefix=redis_prefix, lease=LEASE), FakeClock()
    )
    yield kit
    await kit.close()


async def on_node(port: int, *command: str) -> str:
    client = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        return str(await client.execute_command(*command))
    finally:
        await client.aclose()


async def role(port: int) -> str:
    """``master`` or ``slave``, as the node itself reports."""
    client = aioredis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        return str((await client.info("replication"))["role"])
    finally:
        await client.aclose()


async def nodes_by_role(cluster: ClusterGroup) -> tuple[list[int], list[int]]:
    """The ports of the primaries and of the replicas, as the nodes report now."""
    primaries: list[int] = []
    replicas: list[int] = []
    for node in cluster.nodes:
        (primaries if await role(node.port) == "master" else replicas).append(node.port)
    return primaries, replicas


async def promoted(port: int, within: float) -> bool:
    """Whether the node at ``port`` serves as a primary within ``within`` seconds."""
    give_up = asyncio.get_running_loop().time() + within
    while await role(port) != "master":
        if asyncio.get_running_loop().time() > give_up:
            return False
        await asyncio.sleep(0.05)  # no notification: a failover is the nodes' own vote
    return True


async def cluster_ok(ports: list[int]) -> None:
    """Wait until every node at ``ports`` reports ``cluster_state:ok`` again."""
    async with asyncio.timeout(FAILOVER_WITHIN):
        for port in ports:
            while "cluster_state:ok" not in await on_node(port, "CLUSTER", "INFO"):
                await asyncio.sleep(0.05)  # the nodes agree on the new slot map by gossip


async def replicated_now(primaries: list[int]) -> None:
    """Every write so far is on the replicas too (``WAIT`` on each primary)."""
    for port in primaries:
        assert await on_node(port, "WAIT", "1", "5000") == "1"


async def once_reachable(store: RedisStore, cart_id: str) -> list[Hold]:
    """The cart's holds, as soon as the store reaches the slot's primary again."""
    async with asyncio.timeout(FAILOVER_WITHIN):
        while True:
            try:
                return await store.cart_holds(cart_id)
            except StoreUnavailable:
                await asyncio.sleep(0.2)  # the replica is not elected yet


async def cluster_store(kit: StoreKit) -> RedisStore:
    store = await kit.store()
    assert isinstance(store, RedisStore)
    return store


async def planned(kit: StoreKit, store: RedisStore) -> list[str]:
    """The ids of one hold per cart, each planned to renew 10 s from now.

    A new hold's save raises StoreUnavailable while its shard's primary is not
    serving (CLUSTERDOWN, TRYAGAIN just after a failover): an outage, never a
    refusal, so it is tried again, as an application would.
    """
    holds = [kit.hold(f"cart-{number}") for number in range(CARTS)]
    async with asyncio.timeout(FAILOVER_WITHIN):
        for hold in holds:
            while True:
                try:
                    assert await store.save(hold, "renew", kit.at(store, 10))
                    break
                except StoreUnavailable as error:
                    if error.refused:
                        raise
                    await asyncio.sleep(0.2)  # the nodes settle the new slot map
    return sorted(hold.id for hold in holds)


async def hand_over(cluster: ClusterGroup, replicas: list[int]) -> None:
    """Each replica takes its primary's place (a coordinated failover: no write lost).

    One at a time: a replica is elected by the votes of the other primaries, which
    a primary handing over itself cannot give. A failover that did not happen
    within a few seconds (a vote lost) is asked for again.
    """
    async with asyncio.timeout(FAILOVER_WITHIN):
        for port in replicas:
            while await role(port) != "master":
                try:
                    await on_node(port, "CLUSTER", "FAILOVER")
                except ResponseError:  # promoted since its role was read: the loop sees it
                    continue
                await promoted(port, within=3.0)
    await cluster_ok([node.port for node in cluster.nodes])


async def claimed_now(kit: StoreKit, store: RedisStore) -> list[str]:
    """The ids of the holds whose plan is due at the planned time, claimed."""
    return sorted(due.hold.id for due in await store.claim_due(kit.at(store, 10), 2 * CARTS))


@pytest.mark.asyncio
async def test_after_every_primary_hands_over_to_its_replica_each_plan_comes_due_once(
    kit: StoreKit, replicated: ClusterGroup
) -> None:
    store = await cluster_store(kit)
    holds = await planned(kit, store)
    primaries, replicas = await nodes_by_role(replicated)
    await replicated_now(primaries)
    await hand_over(replicated, replicas)
    assert await claimed_now(kit, store) == holds
    assert await claimed_now(kit, store) == []


@pytest.mark.asyncio
async def test_a_store_writes_and_claims_on_the_new_primaries_after_a_failover(
    kit: StoreKit, replicated: ClusterGroup
) -> None:
    store = await cluster_store(kit)
    await store.save(kit.hold("cart-warm"), "warn", kit.at(store, 30))  # scripts in use
    _primaries, replicas = await nodes_by_role(replicated)
    await hand_over(replicated, replicas)
    holds = await planned(kit, store)  # every script again, on nodes that never ran one
    assert await claimed_now(kit, store) == holds


@pytest.mark.asyncio
async def test_a_killed_primary_is_replaced_by_its_replica_with_every_hold(
    kit: StoreKit, replicated: ClusterGroup
) -> None:
    store = await cluster_store(kit)
    holds = await planned(kit, store)
    primaries, _replicas = await nodes_by_role(replicated)
    await replicated_now(primaries)
    [killed] = [node for node in replicated.nodes if node.port == primaries[0]]
    killed.signal(signal.SIGKILL)
    found = [hold.id for number in range(CARTS)
             for hold in await once_reachable(store, f"cart-{number}")]
    assert sorted(found) == holds
    await cluster_ok([node.port for node in replicated.nodes if node is not killed])
    assert await claimed_now(kit, store) == holds

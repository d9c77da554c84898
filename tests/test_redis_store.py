"""RedisStore beyond the conformance suite: leases, takeover, outages, restarts, events,
TTLs, the shared token store, and managers sharing carts (fake server + FakeClock)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from conftest import RedisServer
from manager_helpers import Recorder, live_guids

import openticket_async
import openticket_async.stores.redis
from openticket_async import (
    BearerToken,
    Hold,
    HoldEvent,
    HoldPolicy,
    HoldState,
    InvalidArgument,
    Lost,
    OAuth2,
    OpenTicketClient,
    OpenTicketError,
    Released,
    Renewed,
    ReservationManager,
    TokenSet,
)
from openticket_async._lifecycle import reserve_now
from openticket_async.stores import Due
from openticket_async.stores.redis import (
    RedisStore,
    RedisTokenStore,
    StoreUnavailable,
    lease_for,
)
from openticket_async.testing import BusyProbe, FakeClock, FakeOpenTicket
from openticket_async.testing.store_conformance import StoreKit

LEASE = 5.0


@pytest_asyncio.fixture
async def kit(redis_url: str, redis_prefix: str) -> AsyncIterator[StoreKit]:
    kit = StoreKit(lambda: RedisStore(redis_url, prefix=redis_prefix, lease=LEASE), FakeClock())
    yield kit
    await kit.close()


@pytest_asyncio.fixture
async def raw(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


async def redis_store(kit: StoreKit) -> RedisStore:
    store = await kit.store()
    assert isinstance(store, RedisStore)
    return store


async def renewal_claimed_by_one_of_two(
    kit: StoreKit,
) -> tuple[RedisStore, RedisStore, Hold, Due]:
    """Two stores on one Redis; a hold whose renewal the first has claimed (its claim)."""
    renewing, other = await redis_store(kit), await redis_store(kit)
    hold = kit.hold()
    await renewing.save(hold, "renew", kit.at(renewing, 0))
    [claim] = await renewing.claim_due(kit.at(renewing, 0), 10)
    return renewing, other, hold, claim


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# -- the public door ---------------------------------------------------------------------


def test_the_redis_door_exports_exactly_its_public_names() -> None:
    names = [
        "CartEvent", "PacedClient", "RedisStore", "RedisTokenStore", "StoreUnavailable",
        "lease_for",
    ]
    assert openticket_async.stores.redis.__all__ == names
    for name in names:
        assert hasattr(openticket_async.stores.redis, name), name


def test_store_unavailable_lives_in_the_one_error_tree_behind_the_redis_door() -> None:
    assert issubclass(StoreUnavailable, OpenTicketError)
    assert StoreUnavailable is openticket_async._exceptions.StoreUnavailable
    assert "StoreUnavailable" not in openticket_async.__all__


class ProbeRecordingClock(FakeClock):
    """A FakeClock that also lists the busy probes registered with it."""

    def __init__(self) -> None:
        super().__init__()
        self.probes: list[BusyProbe] = []

    def add_busy_probe(self, probe: BusyProbe) -> None:
        self.probes.append(probe)
        super().add_busy_probe(probe)

    def remove_busy_probe(self, probe: BusyProbe) -> None:
        self.probes.remove(probe)
        super().remove_busy_probe(probe)


@pytest.mark.asyncio
async def test_a_bound_store_is_a_busy_probe_of_its_clock_until_closed(redis_url: str) -> None:
    first, second = ProbeRecordingClock(), ProbeRecordingClock()
    store = RedisStore(redis_url)
    store.bind(first)
    assert len(first.probes) == 1
    assert not first.probes[0].busy()  # nothing on the wire
    store.bind(second)  # rebinding moves the probe
    assert (len(first.probes), len(second.probes)) == (0, 1)
    await store.aclose()
    assert second.probes == []


# -- leases and takeover ----------------------------------------------------------------


def test_default_lease_is_a_third_of_renew_before_and_at_least_a_second() -> None:
    assert lease_for(HoldPolicy(renew_before=60)) == 20.0
    assert lease_for(HoldPolicy(renew_before=2)) == 1.0
    assert RedisStore("redis://127.0.0.1:1", policy=HoldPolicy(renew_before=30)).lease == 10.0


def test_lease_follows_the_policy_bind_passes_unless_given() -> None:
    clock = FakeClock()
    derived = RedisStore("redis://127.0.0.1:1")
    derived.bind(clock, HoldPolicy(renew_before=12))
    assert derived.lease == 4.0
    given = RedisStore("redis://127.0.0.1:1", lease=7)
    given.bind(clock, HoldPolicy(renew_before=12))
    assert given.lease == 7.0


@pytest.mark.asyncio
async def test_claim_of_a_dead_worker_comes_due_again_when_its_lease_runs_out(
    kit: StoreKit,
) -> None:
    dead, alive = await redis_store(kit), await redis_store(kit)
    hold = kit.hold()
    await dead.save(hold, "warn", kit.at(dead, 0))
    [first] = await dead.claim_due(kit.at(dead, 0), 10)  # ... and the worker dies here
    assert await alive.claim_due(kit.at(alive, LEASE - 0.1), 10) == []
    [second] = await alive.claim_due(kit.at(alive, LEASE), 10)
    assert (second.hold.id, second.action) == (hold.id, "warn")
    assert second.fence > first.fence


@pytest.mark.asyncio
async def test_renewal_orphaned_by_a_dead_worker_is_handed_out_as_a_renewal(
    kit: StoreKit,
) -> None:
    dead, alive = await redis_store(kit), await redis_store(kit)
    hold = kit.hold()
    await dead.save(hold, "renew", kit.at(dead, 0))
    [claim] = await dead.claim_due(kit.at(dead, 0), 10)
    hold.state = HoldState.RENEWING  # what the manager does, then saves its safety net
    assert await dead.save(hold, "drop", kit.at(dead, 400), claim.fence)
    assert await alive.claim_due(kit.at(alive, LEASE - 0.1), 10) == []
    [orphan] = await alive.claim_due(kit.at(alive, LEASE), 10)
    assert orphan.action == "renew"
    assert orphan.hold.state is HoldState.ACTIVE
    assert orphan.fence > claim.fence


async def nobody_claims_for_three_and_a_half_leases(
    kit: StoreKit, renewing: RedisStore, other: RedisStore
) -> None:
    """A renewal (or a try) of ``renewing`` takes 3.5 leases; both stores poll twice a
    lease meanwhile, and neither is handed the hold."""
    for step in range(1, 8):
        seconds = step * LEASE / 2
        assert await renewing.claim_due(kit.at(renewing, seconds), 10) == []
        assert await other.claim_due(kit.at(other, seconds), 10) == []


@pytest.mark.asyncio
async def test_live_renewing_worker_keeps_its_lease_and_its_write_back(kit: StoreKit) -> None:
    renewing, other, hold, claim = await renewal_claimed_by_one_of_two(kit)
    hold.state = HoldState.RENEWING
    await renewing.save(hold, "drop", kit.at(renewing, 400), claim.fence)
    await nobody_claims_for_three_and_a_half_leases(kit, renewing, other)
    hold.state = HoldState.ACTIVE
    assert await renewing.save(hold, "renew", kit.at(renewing, 300), claim.fence)


@pytest.mark.asyncio
async def test_safety_net_of_a_running_renewal_fires_once_in_its_own_worker(
    kit: StoreKit,
) -> None:
    renewing, other, hold, claim = await renewal_claimed_by_one_of_two(kit)
    hold.state = HoldState.RENEWING
    assert await renewing.save(hold, "warn", kit.at(renewing, 1), claim.fence)
    assert await other.claim_due(kit.at(other, 1), 10) == []
    [safety] = await renewing.claim_due(kit.at(renewing, 1), 10)
    assert (safety.hold, safety.action, safety.due) == (hold, "warn", kit.at(renewing, 1))
    assert await renewing.claim_due(kit.at(renewing, 2), 10) == []
    assert await other.claim_due(kit.at(other, 2), 10) == []


@pytest.mark.asyncio
async def test_a_last_try_on_the_wire_is_claimed_by_nobody_while_its_worker_keeps_the_lease(
    kit: StoreKit,
) -> None:
    renewing, other, hold, claim = await renewal_claimed_by_one_of_two(kit)
    # the try after the deadline: its reserve is the hold's pending work, and the
    # manager plans no safety net for it (the lifecycle's I1)
    hold.state = HoldState.AT_RISK
    reserve_now(hold, kit.clock.now())
    await nobody_claims_for_three_and_a_half_leases(kit, renewing, other)
    hold.state = HoldState.ACTIVE  # answered: its next plan is written under the same claim
    assert await renewing.save(hold, "renew", kit.at(renewing, 300), claim.fence)


@pytest.mark.asyncio
async def test_closing_hands_renewals_in_flight_to_other_workers(kit: StoreKit) -> None:
    leaving, staying = await redis_store(kit), await redis_store(kit)
    hold = kit.hold()
    await leaving.save(hold, "renew", kit.at(leaving, 0))
    [claim] = await leaving.claim_due(kit.at(leaving, 0), 10)
    hold.state = HoldState.RENEWING
    await leaving.save(hold, "drop", kit.at(leaving, 400), claim.fence)
    await leaving.aclose()
    [taken] = await staying.claim_due(kit.at(staying, 0.001), 10)
    assert (taken.hold.id, taken.action) == (hold.id, "renew")


# -- data, keys, TTLs -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_metadata_that_is_not_json_is_refused(kit: StoreKit) -> None:
    store = await redis_store(kit)
    hold = kit.hold()
    hold.metadata = {"when": object()}
    with pytest.raises(InvalidArgument, match="JSON"):
        await store.save(hold, "renew", kit.at(store, 10))


@pytest.mark.asyncio
async def test_ids_with_commas_are_written_whole_beside_the_joined_fields(
    kit: StoreKit, raw: aioredis.Redis, redis_prefix: str
) -> None:
    # SAVE takes its numeric and fixed fields joined by commas: ids must stay apart
    store = await redis_store(kit)
    hold = kit.hold("cart,a,b")
    hold.id = "hold,1,2"
    assert await store.save(hold, "renew", kit.at(store, 0), 0)
    record = await raw.hgetall(f"{redis_prefix}hold:hold,1,2")
    assert (record["cart"], record["action"], record["fence"]) == ("cart,a,b", "renew", "0")
    [claim] = await store.claim_due(kit.at(store, 0), 10)
    assert (claim.hold.id, claim.hold.cart_id, claim.action) == ("hold,1,2", "cart,a,b", "renew")


@pytest.mark.asyncio
async def test_prefixes_keep_deployments_apart(
    redis_url: str, redis_prefix: str
) -> None:
    kit = StoreKit(lambda: None, FakeClock())
    blue = RedisStore(redis_url, prefix=redis_prefix + "blue:")
    green = RedisStore(redis_url, prefix=redis_prefix + "green:")
    for store in (blue, green):
        store.bind(kit.clock)
    try:
        hold = kit.hold("cart-x")
        await blue.save(hold, "renew", kit.at(blue, 1))
        assert await green.cart_holds("cart-x") == []
        assert await green.claim_due(kit.at(green, 10), 10) == []
        assert [h.id for h in await blue.cart_holds("cart-x")] == [hold.id]
    finally:
        await blue.aclose()
        await green.aclose()


@pytest.mark.asyncio
async def test_every_key_expires(kit: StoreKit, raw: aioredis.Redis, redis_prefix: str) -> None:
    store = await redis_store(kit)
    kept, ended = kit.hold("cart-t"), kit.hold("cart-t")
    await store.save(kept, "renew", kit.at(store, 10))
    await store.save(ended, "renew", kit.at(store, 10))
    await store.claim_due(kit.at(store, 10), 1)
    ended.state = HoldState.RELEASED
    store.event_sink.publish(Released(ended, 0.0, 0.0))
    await store.forget(ended)
    await store.token_store().save(kit_token())
    await store.aclose()  # flushes the event
    keys = [key async for key in raw.scan_iter(match=redis_prefix + "*")]
    assert {key.removeprefix(redis_prefix).split(":")[0] for key in keys} >= {
        "queue", "seq", "epoch", "hold", "cart", "events",
    }
    for key in keys:
        if key.endswith(":token:default"):
            continue  # the shared OAuth2 tokens live as long as the login
        assert await raw.ttl(key) > 0, key


def kit_token() -> TokenSet:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return TokenSet("at_x", "rt_x", now + timedelta(days=3), now + timedelta(days=365))


# -- outages and restarts ---------------------------------------------------------------


@pytest.mark.asyncio
async def test_unreachable_redis_gives_typed_errors_and_the_scheduler_waits() -> None:
    port = closed_port()
    store = RedisStore(f"redis://127.0.0.1:{port}/0")
    kit = StoreKit(lambda: None, FakeClock())
    store.bind(kit.clock)
    try:
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}") as caught:
            await store.cart_holds("cart")
        assert not caught.value.refused
        with pytest.raises(StoreUnavailable):  # a new hold cannot be kept without Redis
            await store.save(kit.hold(), "renew", kit.at(store, 5))
        assert await store.claim_due(kit.at(store, 5), 10) == []
        assert await store.next_due() is None
    finally:
        await store.aclose()


@pytest.mark.asyncio
async def test_write_backs_during_an_outage_are_replayed(
    kit: StoreKit, redis_server: RedisServer
) -> None:
    store, peer = await redis_store(kit), await redis_store(kit)
    hold = kit.hold("cart-o")
    await store.save(hold, "renew", kit.at(store, 1))
    [claim] = await store.claim_due(kit.at(store, 1), 10)
    redis_server.stop()
    try:
        hold.renewals = 1
        assert await store.save(hold, "warn", kit.at(store, 30), claim.fence)  # kept
        assert await store.claim_due(kit.at(store, 2), 10) == []
    finally:
        redis_server.start()
    assert await store.claim_due(kit.at(store, 2), 10) == []  # replays, restores
    [seen] = await peer.cart_holds("cart-o")
    assert seen.renewals == 1
    assert await peer.next_due() == kit.at(peer, 30)


@pytest.mark.asyncio
async def test_restart_without_persistence_restores_every_hold_known_here(
    kit: StoreKit, redis_server: RedisServer
) -> None:
    writer, reader = await redis_store(kit), await redis_store(kit)
    holds = [kit.hold("cart-r") for _ in range(3)]
    for seconds, hold in enumerate(holds, start=10):
        await writer.save(hold, "renew", kit.at(writer, seconds))
    assert len(await reader.cart_holds("cart-r")) == 3
    await writer.claim_due(kit.at(writer, 0), 10)  # both know the epoch
    await reader.claim_due(kit.at(reader, 0), 10)
    redis_server.restart()
    assert await reader.cart_holds("cart-r") == []  # the data is gone...
    await reader.claim_due(kit.at(reader, 0), 10)
    await writer.claim_due(kit.at(writer, 0), 10)
    restored = await reader.cart_holds("cart-r")  # ... and back
    assert [hold.id for hold in restored] == [hold.id for hold in holds]
    dues = [due.due for due in await reader.claim_due(kit.at(reader, 12), 10)]
    assert dues == [kit.at(reader, 10), kit.at(reader, 11), kit.at(reader, 12)]


@pytest.mark.asyncio
async def test_restart_restores_a_loaded_carts_holds_when_their_writer_is_gone(
    kit: StoreKit, redis_server: RedisServer
) -> None:
    writer, reader = await redis_store(kit), await redis_store(kit)
    hold = kit.hold("cart-g")
    await writer.save(hold, "warn", kit.at(writer, 30))
    await writer.aclose()  # the process that wrote it is gone
    [loaded] = await reader.cart_holds("cart-g")
    await reader.claim_due(kit.at(reader, 0), 10)
    redis_server.restart()
    await reader.claim_due(kit.at(reader, 0), 10)
    assert await reader.cart_holds("cart-g") == [loaded]
    assert await reader.next_due() == kit.at(reader, 30)


# -- events -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_carts_events_can_be_watched_from_another_process(kit: StoreKit) -> None:
    emitter, watcher = await redis_store(kit), await redis_store(kit)
    hold = kit.hold("cart-w")
    assert hold.reservation is not None
    renewal = Renewed(hold, 12.5, 0.25, old=hold.reservation, new=hold.reservation)
    emitter.event_sink.publish(renewal)
    hold.state = HoldState.RELEASED
    emitter.event_sink.publish(Released(hold, 10.0, 0.0))
    watch = watcher.watch("cart-w", since="0-0", block=0.05)
    renewed = await asyncio.wait_for(anext(watch), 5)
    released = await asyncio.wait_for(anext(watch), 5)
    await watch.aclose()
    assert (renewed.kind, renewed.hold_id, renewed.time_left) == ("Renewed", hold.id, 12.5)
    assert renewed.detail["new_reservation"] == hold.reservation.guid
    assert renewed.origin == emitter.owner
    assert not renewed.terminal
    assert (released.kind, released.state, released.terminal) == (
        "Released", HoldState.RELEASED, True,
    )
    resumed = watcher.watch("cart-w", since=renewed.id, block=0.05)
    assert (await asyncio.wait_for(anext(resumed), 5)).id == released.id
    await resumed.aclose()


@pytest.mark.asyncio
async def test_a_batch_of_events_sets_each_streams_ttl_once(
    kit: StoreKit, raw: aioredis.Redis, redis_prefix: str
) -> None:
    store = await redis_store(kit)
    holds = [kit.hold("cart-a") for _ in range(3)] + [kit.hold("cart-b") for _ in range(2)]
    expires_before = await expire_calls(raw)
    for hold in holds:  # one turn of the loop: the relay writes them in one batch
        store.event_sink.publish(Released(hold, 1.0, 0.0))
    await store.aclose()
    streams = {cart: redis_prefix + "events:" + cart for cart in ("cart-a", "cart-b")}
    written = {cart: [fields["e"] for _id, fields in await raw.xrange(key)]
               for cart, key in streams.items()}
    assert [len(entries) for entries in written.values()] == [3, 2]
    assert [hold.id for hold in holds] == [
        json.loads(text)["hold"] for entries in written.values() for text in entries
    ]
    for key in streams.values():
        assert 0 < await raw.ttl(key) <= 3600
    assert await expire_calls(raw) - expires_before == 2


async def expire_calls(raw: aioredis.Redis) -> int:
    stats = await raw.info("commandstats")
    return int(stats.get("cmdstat_expire", {}).get("calls", 0))


# -- the shared token store -------------------------------------------------------------


@pytest.mark.asyncio
async def test_concurrent_refreshes_through_redis_grant_once(
    redis_url: str, redis_prefix: str
) -> None:
    stores = [RedisTokenStore(redis_url, key=redis_prefix + "token") for _ in range(5)]
    stale = kit_token()
    grants = 0
    release = asyncio.Event()

    async def grant(old: TokenSet) -> TokenSet:
        nonlocal grants
        grants += 1
        await release.wait()
        return TokenSet("at_new", "rt_new", old.expires_at.replace(year=old.expires_at.year + 1))

    refreshes = [asyncio.ensure_future(store.refresh(stale, grant)) for store in stores]
    await wait_for(lambda: grants == 1)
    release.set()
    fresh = await asyncio.gather(*refreshes)
    assert grants == 1
    assert {token.access_token for token in fresh} == {"at_new"}
    assert (await stores[0].load()) == fresh[0]
    for store in stores:
        await store.aclose()


@pytest.mark.asyncio
@pytest.mark.parametrize("url_fixture", ["redis_url", "redis_cluster_url"])
async def test_oauth2_clients_sharing_a_redis_token_store_refresh_once(
    url_fixture: str, redis_prefix: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(url_fixture)  # one Redis, or a three-primary cluster
    async with FakeOpenTicket(FakeClock()) as fake:
        shop = fake.add_shop()
        fake.add_payment_method(shop)
        login = fake.issue_token()
        fake.expire_access_tokens()
        stores = [RedisTokenStore(url, key=redis_prefix + "token") for _ in range(4)]
        clients = [
            OpenTicketClient(
                auth=OAuth2("test-client", "test-secret", login, store=store),
                hosts=fake.hosts,
                clock=fake.clock,
            )
            for store in stores
        ]
        try:
            for client in clients:
                await client.__aenter__()
            answers = await asyncio.gather(*(c.payment_methods(shop.guid) for c in clients))
            shared = await stores[0].load()
        finally:
            for client in clients:
                await client.__aexit__(None, None, None)
            for store in stores:
                await store.aclose()
        assert all(len(methods) == 1 for methods in answers)
        assert fake.refresh_count == 1
        assert shared is not None
        assert shared.access_token != login.access_token


async def wait_for(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0)


# -- managers sharing carts (fake server, FakeClock) -------------------------------------


@pytest_asyncio.fixture
async def shop_world(
    redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[FakeOpenTicket[FakeClock], Callable[[], Awaitable[Any]]]]:
    async with FakeOpenTicket(FakeClock(), reservation_ttl=TTL) as fake:
        token = fake.issue_token()
        async with OpenTicketClient(
            auth=BearerToken(token.access_token),
            hosts=fake.hosts,
            clock=fake.clock,
            reservation_ttl=TTL,
        ) as client:

            async def manager() -> ReservationManager:
                store = RedisStore(redis_url, prefix=redis_prefix, policy=POLICY)
                return ReservationManager(client, policy=POLICY, store=store)

            yield fake, manager


# A short TTL keeps the virtual time, and so the Redis round trips of the managers'
# polls, small; the rules are the same as at 8 minutes.
TTL = 120.0
POLICY = HoldPolicy(
    max_hold=None, renew_jitter=0, renew_before=20, warn_before=20, safety_margin=1
)


@pytest.mark.asyncio
async def test_a_cart_made_by_one_manager_is_reached_and_renewed_by_another(
    shop_world: tuple[FakeOpenTicket[FakeClock], Callable[[], Awaitable[Any]]],
) -> None:
    fake, make = shop_world
    shop = fake.add_shop()
    tickets = [fake.add_ticket(shop, stock=3) for _ in range(3)]
    first, second = await make(), await make()
    recorder = Recorder()
    async with second:
        second.on(HoldEvent, recorder)
        async with first, first.cart(shop.guid, cart_id="shared") as cart:
            for ticket in tickets:
                await cart.add(ticket.guid)
        # the first worker is gone; the second keeps the cart alive for many cycles
        for _ in range(24):
            await fake.clock.advance(30)
        async with second.cart(shop.guid, cart_id="shared") as cart:
            holds = cart.holds
            assert len(holds) == 3
            live = live_guids(fake)
            assert all(h.reservation is not None and h.reservation.guid in live for h in holds)
            await cart.close()
    assert len(recorder.of(Renewed)) >= 3 * 6  # 720 s, a renewal every ~100 s
    assert recorder.of(Lost) == []
    assert recorder.terminal_counts() == {hold.id: 1 for hold in holds}


@pytest.mark.realtime
@pytest.mark.asyncio
async def test_redis_restart_during_a_run_loses_no_hold(
    shop_world: tuple[FakeOpenTicket[FakeClock], Callable[[], Awaitable[Any]]],
    redis_server: RedisServer,
) -> None:
    fake, make = shop_world
    shop = fake.add_shop()
    tickets = [fake.add_ticket(shop, stock=3) for _ in range(4)]
    recorder = Recorder()
    async with await make() as manager:
        manager.on(HoldEvent, recorder)
        cart = manager.cart(shop.guid, cart_id="restart")
        holds = [(await cart.add(ticket.guid))[0] for ticket in tickets]
        # renewals at about 99 s, 198 s, 297 s, 396 s
        for step in range(42):
            if step in (5, 30):
                redis_server.restart()  # all data lost
            if step == 19:
                redis_server.stop()  # the renewals due at ~198 s wait for Redis
                await fake.clock.advance(10)
                redis_server.start()
            await fake.clock.advance(10)
            live = live_guids(fake)
            assert {hold.reservation.guid for hold in holds if hold.reservation} <= live
            assert all(hold.reservation is not None for hold in holds)
        assert [hold.state for hold in holds] == [HoldState.ACTIVE] * 4
        assert all(hold.renewals >= 4 for hold in holds)
        assert recorder.of(Lost) == []
        assert {h.id for h in await manager.store.cart_holds("restart")} == {h.id for h in holds}

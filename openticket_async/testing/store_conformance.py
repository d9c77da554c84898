"""A conformance suite for :class:`~openticket_async.stores.ReservationStore` implementations.

:class:`StoreConformance` holds the tests every store must pass: save and claim
order, ties, the claim limit, the claim's fence, forget, ``cart_holds`` and
``next_due``, the health read of a store that has one (``MonitoredStore``), and
the checkout claims of carts (granted once, fenced, extended, released, lapsing
when their lease runs out on the kit's clock).
:class:`SharedStoreConformance` adds what only makes sense when several
processes share the store (``shared`` True): a peer sees the same holds, each
claim gets a larger fence, stale write-backs are refused (an end only for
another store's newer claim), the application's ends win whatever the fence,
and a cart claimed for checkout by one store is neither claimed nor worked on
by another until the claim ends.

Use it by subclassing one of them in a test module and providing a
``store_factory`` fixture: a callable (sync or async) that returns a new,
unbound store each time it is called. For a shared store every store it returns
during one test must see the same data (like two processes on one backend) and
nothing of other tests (for Redis: a fresh key prefix per test)::

    import pytest
    from openticket_async import HoldPolicy
    from openticket_async.stores.redis import RedisStore
    from openticket_async.testing.store_conformance import SharedStoreConformance

    class TestMyRedisStore(SharedStoreConformance):
        @pytest.fixture
        def store_factory(self, redis_url, redis_prefix):
            return lambda: RedisStore(redis_url, prefix=redis_prefix)

The suite binds every store to one :class:`~openticket_async.testing.FakeClock`
and closes them after each test. It needs pytest-asyncio.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from .._hold import Hold, HoldState
from ..stores import MonitoredStore, ReservationStore
from ._claim_rules import LONG_AFTER, CartClaimRules, SharedCartClaimRules
from ._clock import FakeClock
from ._store_kit import StoreKit

__all__ = ["SharedStoreConformance", "StoreConformance", "StoreKit"]

def _claimed(dues: list[Any]) -> list[tuple[Hold, str]]:
    return [(due.hold, due.action) for due in dues]


class StoreConformance(CartClaimRules):
    """The suite; subclass it as ``Test...`` and provide a ``store_factory`` fixture."""

    @pytest_asyncio.fixture
    async def kit(self, store_factory: Callable[[], Any]) -> AsyncIterator[StoreKit]:
        """The stores of one test, closed after it."""
        kit = StoreKit(store_factory, FakeClock())
        yield kit
        await kit.close()

    # -- one store ---------------------------------------------------------------------

    @pytest.mark.asyncio
    async def test_saved_action_is_claimed_once_due_and_not_before(self, kit: StoreKit) -> None:
        store = await kit.store()
        hold = kit.hold()
        due = kit.at(store, 60)
        assert await store.save(hold, "renew", due)
        assert await store.claim_due(due - 1, 10) == []
        [claim] = await store.claim_due(due, 10)
        assert (claim.hold, claim.action, claim.due) == (hold, "renew", due)

    @pytest.mark.asyncio
    async def test_claims_come_earliest_first(self, kit: StoreKit) -> None:
        store = await kit.store()
        late, early, middle = kit.hold(), kit.hold(), kit.hold()
        await store.save(late, "drop", kit.at(store, 30))
        await store.save(early, "warn", kit.at(store, 10))
        await store.save(middle, "renew", kit.at(store, 20))
        claims = await store.claim_due(kit.at(store, 30), 10)
        assert _claimed(claims) == [(early, "warn"), (middle, "renew"), (late, "drop")]

    @pytest.mark.asyncio
    async def test_equal_due_times_keep_save_order(self, kit: StoreKit) -> None:
        store = await kit.store()
        first, second, third = kit.hold(), kit.hold(), kit.hold()
        due = kit.at(store, 10)
        for hold in (first, second, third):
            await store.save(hold, "renew", due)
        await store.save(first, "renew", due)  # saved again: now the latest of the three
        claims = await store.claim_due(due, 10)
        assert [claim.hold for claim in claims] == [second, third, first]

    @pytest.mark.asyncio
    async def test_claim_takes_at_most_limit_earliest_first(self, kit: StoreKit) -> None:
        store = await kit.store()
        holds = [kit.hold() for _ in range(5)]
        for offset, hold in enumerate(holds):
            await store.save(hold, "renew", kit.at(store, offset))
        now = kit.at(store, 10)
        assert [c.hold for c in await store.claim_due(now, 2)] == holds[:2]
        assert [c.hold for c in await store.claim_due(now, 2)] == holds[2:4]
        assert [c.hold for c in await store.claim_due(now, 2)] == holds[4:]

    @pytest.mark.asyncio
    async def test_save_replaces_the_one_pending_action(self, kit: StoreKit) -> None:
        store = await kit.store()
        hold = kit.hold()
        await store.save(hold, "warn", kit.at(store, 10))
        await store.save(hold, "renew", kit.at(store, 20))
        assert await store.claim_due(kit.at(store, 15), 10) == []
        assert _claimed(await store.claim_due(kit.at(store, 20), 10)) == [(hold, "renew")]

    @pytest.mark.asyncio
    async def test_claimed_action_is_not_handed_out_again_at_the_same_time(
        self, kit: StoreKit
    ) -> None:
        store = await kit.store()
        hold = kit.hold()
        now = kit.at(store, 5)
        await store.save(hold, "renew", now)
        assert len(await store.claim_due(now, 10)) == 1
        assert await store.claim_due(now, 10) == []

    @pytest.mark.asyncio
    async def test_write_back_with_the_claims_fence_is_accepted(self, kit: StoreKit) -> None:
        store = await kit.store()
        hold = kit.hold()
        await store.save(hold, "renew", kit.at(store, 1))
        [claim] = await store.claim_due(kit.at(store, 1), 10)
        assert await store.save(hold, "warn", kit.at(store, 50), claim.fence)
        assert _claimed(await store.claim_due(kit.at(store, 50), 10)) == [(hold, "warn")]

    @pytest.mark.asyncio
    async def test_next_due_is_the_earliest_pending_action(self, kit: StoreKit) -> None:
        store = await kit.store()
        assert await store.next_due() is None
        soon, later = kit.hold(), kit.hold()
        await store.save(later, "drop", kit.at(store, 40))
        await store.save(soon, "warn", kit.at(store, 25))
        assert await store.next_due() == kit.at(store, 25)
        await store.forget(soon)
        assert await store.next_due() == kit.at(store, 40)
        await store.forget(later)
        assert await store.next_due() is None

    @pytest.mark.asyncio
    async def test_next_due_after_a_claim_is_later_than_the_claim(self, kit: StoreKit) -> None:
        store = await kit.store()
        hold = kit.hold()
        now = kit.at(store, 5)
        await store.save(hold, "renew", now)
        await store.claim_due(now, 10)
        following = await store.next_due()
        assert following is None or following > now

    @pytest.mark.asyncio
    async def test_forget_removes_the_hold_and_its_action(self, kit: StoreKit) -> None:
        store = await kit.store()
        hold, other = kit.hold("cart-f"), kit.hold("cart-f")
        await store.save(hold, "renew", kit.at(store, 10))
        await store.save(other, "renew", kit.at(store, 10))
        hold.state = HoldState.RELEASED
        await store.forget(hold)
        assert _claimed(await store.claim_due(kit.at(store, 10), 10)) == [(other, "renew")]
        assert await store.cart_holds("cart-f") == [other]

    @pytest.mark.asyncio
    async def test_forget_of_a_claimed_hold_removes_it(self, kit: StoreKit) -> None:
        store = await kit.store()
        hold = kit.hold("cart-c")
        await store.save(hold, "renew", kit.at(store, 1))
        [claim] = await store.claim_due(kit.at(store, 1), 10)
        hold.state = HoldState.LOST
        await store.forget(hold, claim.fence)
        assert await store.cart_holds("cart-c") == []
        assert await store.claim_due(kit.at(store, LONG_AFTER), 10) == []

    @pytest.mark.asyncio
    async def test_cart_holds_lists_a_carts_live_holds_oldest_first(self, kit: StoreKit) -> None:
        store = await kit.store()
        a, b, c = kit.hold("cart-a"), kit.hold("cart-a"), kit.hold("cart-a")
        elsewhere = kit.hold("cart-b")
        for hold, seconds in ((a, 30), (b, 10), (c, 20), (elsewhere, 5)):
            await store.save(hold, "renew", kit.at(store, seconds))
        await store.save(a, "warn", kit.at(store, 1))  # a later save keeps a hold's place
        assert await store.cart_holds("cart-a") == [a, b, c]
        assert await store.cart_holds("cart-b") == [elsewhere]
        assert await store.cart_holds("no-such-cart") == []
        b.state = HoldState.RELEASED
        await store.forget(b)
        holds = await store.cart_holds("cart-a")
        assert holds == [a, c]
        assert all(x is y for x, y in zip(holds, [a, c], strict=True))

    @pytest.mark.asyncio
    async def test_a_store_that_answered_reports_itself_available(self, kit: StoreKit) -> None:
        store = await kit.store()
        if not isinstance(store, MonitoredStore):
            pytest.skip("the store has no health read (MonitoredStore is optional)")
        await store.save(kit.hold(), "renew", kit.at(store, 10))
        assert await store.next_due() == kit.at(store, 10)
        assert store.available


class SharedStoreConformance(SharedCartClaimRules, StoreConformance):
    """The suite for stores shared by processes (``shared`` True).

    All of :class:`StoreConformance`, and what several processes on one backend
    must see: one another's holds, growing fences, stale write-backs refused,
    the application's ends winning.
    """

    @staticmethod
    def _require_shared(store: ReservationStore) -> None:
        assert store.shared, "SharedStoreConformance is for stores whose shared is True"

    @pytest.mark.asyncio
    async def test_peer_sees_the_same_hold_with_its_record(self, kit: StoreKit) -> None:
        mine = await kit.store()
        self._require_shared(mine)
        peer = await kit.store()
        hold = kit.hold("cart-p", seat="A1")
        hold.renewals = 2
        await mine.save(hold, "renew", kit.at(mine, 10))
        [seen] = await peer.cart_holds("cart-p")
        assert seen is not hold  # another process has its own object
        assert (seen.id, seen.ticket_guid, seen.renewals) == (hold.id, hold.ticket_guid, 2)
        assert seen.reservation == hold.reservation  # deadline converted back included
        assert seen.created_at == pytest.approx(hold.created_at)
        assert dict(seen.metadata or {}) == {"seat": "A1"}
        assert seen.state is HoldState.ACTIVE

    @pytest.mark.asyncio
    async def test_peer_claims_its_own_hold_object(self, kit: StoreKit) -> None:
        mine = await kit.store()
        self._require_shared(mine)
        peer = await kit.store()
        hold = kit.hold("cart-i")
        await mine.save(hold, "renew", kit.at(mine, 10))
        [loaded] = await peer.cart_holds("cart-i")
        [claim] = await peer.claim_due(kit.at(peer, 10), 10)
        assert claim.hold is loaded

    @pytest.mark.asyncio
    async def test_each_claim_gets_a_larger_fence(self, kit: StoreKit) -> None:
        mine = await kit.store()
        self._require_shared(mine)
        peer = await kit.store()
        hold = kit.hold()
        await mine.save(hold, "renew", kit.at(mine, 1))
        [first] = await mine.claim_due(kit.at(mine, 1), 10)
        [second] = await peer.claim_due(kit.at(peer, LONG_AFTER), 10)  # the lease lapsed
        assert second.hold.id == hold.id
        assert second.fence > first.fence

    @pytest.mark.asyncio
    async def test_stale_write_back_is_refused(self, kit: StoreKit) -> None:
        mine = await kit.store()
        self._require_shared(mine)
        peer = await kit.store()
        hold = kit.hold()
        await mine.save(hold, "renew", kit.at(mine, 1))
        [stale] = await mine.claim_due(kit.at(mine, 1), 10)
        [fresh] = await peer.claim_due(kit.at(peer, LONG_AFTER), 10)
        assert not await mine.save(hold, "warn", kit.at(mine, 300), stale.fence)
        assert await peer.save(fresh.hold, "warn", kit.at(peer, 200), fresh.fence)
        assert await peer.next_due() == kit.at(peer, 200)

    @pytest.mark.asyncio
    async def test_stale_end_by_the_scheduler_is_refused(self, kit: StoreKit) -> None:
        mine = await kit.store()
        self._require_shared(mine)
        peer = await kit.store()
        hold = kit.hold("cart-s")
        await mine.save(hold, "renew", kit.at(mine, 1))
        [stale] = await mine.claim_due(kit.at(mine, 1), 10)
        [fresh] = await peer.claim_due(kit.at(peer, LONG_AFTER), 10)
        hold.state = HoldState.LOST
        await mine.forget(hold, stale.fence)
        assert [h.id for h in await peer.cart_holds("cart-s")] == [hold.id]
        assert await peer.save(fresh.hold, "warn", kit.at(peer, 200), fresh.fence)

    @pytest.mark.asyncio
    async def test_end_behind_the_stores_own_later_claim_is_written(self, kit: StoreKit) -> None:
        mine = await kit.store()
        self._require_shared(mine)
        peer = await kit.store()
        hold = kit.hold("cart-o")
        await mine.save(hold, "renew", kit.at(mine, 1))
        [first] = await mine.claim_due(kit.at(mine, 1), 10)
        # the store claims it again (its lease lapsed) while the end under the first
        # claim is on its way: that claim hands nothing out for an ended hold
        [again] = await mine.claim_due(kit.at(mine, LONG_AFTER), 10)
        assert again.fence > first.fence
        hold.state = HoldState.LOST
        assert await mine.forget(hold, first.fence)
        assert await peer.cart_holds("cart-o") == []

    @pytest.mark.asyncio
    async def test_release_wins_whatever_the_fence(self, kit: StoreKit) -> None:
        mine = await kit.store()
        self._require_shared(mine)
        peer = await kit.store()
        hold = kit.hold("cart-r")
        await mine.save(hold, "renew", kit.at(mine, 1))
        [fresh] = await peer.claim_due(kit.at(peer, 1), 10)
        hold.state = HoldState.RELEASED
        await mine.forget(hold, 0)
        assert await peer.cart_holds("cart-r") == []
        assert not await peer.save(fresh.hold, "warn", kit.at(peer, 200), fresh.fence)
        assert await peer.claim_due(kit.at(peer, LONG_AFTER), 10) == []

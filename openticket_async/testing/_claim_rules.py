"""The checkout-claim rules of the store conformance suite (see ``store_conformance``).

:class:`CartClaimRules` holds the rules of cart claims every store keeps, alone
in one process; :class:`SharedCartClaimRules` what several processes sharing a
store must see: a cart claimed by one store is neither claimed by another nor
handed out as due work to it until the claim ends. Time is the kit's virtual
clock: a lease runs out when the test advances it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from .._hold import HoldState
from ..stores import CartClaim, CartTaken, ReservationStore

if TYPE_CHECKING:
    from ._store_kit import StoreKit

__all__ = ["CART_LEASE", "LONG_AFTER", "CartClaimRules", "SharedCartClaimRules"]

#: The lease of the cart claims the suite makes (seconds on the kit's clock).
CART_LEASE = 30.0
#: Far beyond any sane claim lease: a claim this late finds every lease lapsed.
LONG_AFTER = 100_000.0


async def _claim(store: ReservationStore, cart_id: str) -> CartClaim:
    """Claim ``cart_id`` for CART_LEASE seconds, which must succeed."""
    claim = await store.claim_cart(cart_id, CART_LEASE)
    assert isinstance(claim, CartClaim), claim
    return claim


class CartClaimRules:
    """Cart claims in one store: granted once, fenced, extended, released, lapsing."""

    @pytest.mark.asyncio
    async def test_cart_claim_is_granted_with_a_fence_and_its_lease(self, kit: StoreKit) -> None:
        store = await kit.store()
        claim = await store.claim_cart("cart-k", CART_LEASE)
        assert isinstance(claim, CartClaim)
        assert (claim.cart_id, claim.lease) == ("cart-k", CART_LEASE)
        assert claim.fence > 0

    @pytest.mark.asyncio
    async def test_held_cart_claim_refuses_a_second_claim(self, kit: StoreKit) -> None:
        store = await kit.store()
        await _claim(store, "cart-k")
        taken = await store.claim_cart("cart-k", CART_LEASE)
        assert isinstance(taken, CartTaken)
        assert (taken.cart_id, taken.checkout) == ("cart-k", True)
        assert 0 < taken.free_in <= CART_LEASE

    @pytest.mark.asyncio
    async def test_claims_of_different_carts_are_independent(self, kit: StoreKit) -> None:
        store = await kit.store()
        await _claim(store, "cart-1")
        second = await store.claim_cart("cart-2", CART_LEASE)
        assert isinstance(second, CartClaim)
        assert second.cart_id == "cart-2"

    @pytest.mark.asyncio
    async def test_released_cart_is_claimed_again_with_a_larger_fence(
        self, kit: StoreKit
    ) -> None:
        store = await kit.store()
        first = await _claim(store, "cart-k")
        assert await store.release_cart(first)
        second = await _claim(store, "cart-k")
        assert second.fence > first.fence

    @pytest.mark.asyncio
    async def test_cart_claim_lapses_when_its_lease_runs_out(self, kit: StoreKit) -> None:
        store = await kit.store()
        first = await _claim(store, "cart-k")
        await kit.clock.advance(CART_LEASE)
        second = await _claim(store, "cart-k")  # a crashed holder frees the cart by itself
        assert second.fence > first.fence

    @pytest.mark.asyncio
    async def test_extended_cart_claim_outlasts_its_first_lease(self, kit: StoreKit) -> None:
        store = await kit.store()
        claim = await _claim(store, "cart-k")
        await kit.clock.advance(CART_LEASE * 0.6)
        assert await store.extend_cart_claim(claim)
        await kit.clock.advance(CART_LEASE * 0.6)  # past the first lease, within the second
        assert isinstance(await store.claim_cart("cart-k", CART_LEASE), CartTaken)

    @pytest.mark.asyncio
    async def test_lapsed_cart_claim_cannot_be_extended(self, kit: StoreKit) -> None:
        store = await kit.store()
        claim = await _claim(store, "cart-k")
        await kit.clock.advance(CART_LEASE)
        assert not await store.extend_cart_claim(claim)

    @pytest.mark.asyncio
    async def test_stale_claim_neither_releases_nor_extends_the_new_one(
        self, kit: StoreKit
    ) -> None:
        store = await kit.store()
        stale = await _claim(store, "cart-k")
        await kit.clock.advance(CART_LEASE)
        await _claim(store, "cart-k")
        assert not await store.release_cart(stale)
        assert not await store.extend_cart_claim(stale)
        assert isinstance(await store.claim_cart("cart-k", CART_LEASE), CartTaken)


class SharedCartClaimRules:
    """Cart claims between stores sharing one backend (``shared`` True).

    While a cart is claimed its holds' due work is handed to no store, the
    claimer's included: a claimer that dies mid-checkout must leave its holds'
    plans as they were, for the next worker once the claim lapsed.
    """

    @pytest.mark.asyncio
    async def test_peer_cannot_claim_a_cart_claimed_here(self, kit: StoreKit) -> None:
        mine = await kit.store()
        assert mine.shared
        peer = await kit.store()
        await _claim(mine, "cart-x")
        taken = await peer.claim_cart("cart-x", CART_LEASE)
        assert isinstance(taken, CartTaken)
        assert taken.checkout

    @pytest.mark.asyncio
    async def test_peer_is_not_handed_due_work_of_a_claimed_cart(self, kit: StoreKit) -> None:
        mine = await kit.store()
        assert mine.shared
        peer = await kit.store()
        hold, other = kit.hold("cart-x"), kit.hold("cart-o")
        await mine.save(hold, "renew", kit.at(mine, 1))
        await mine.save(other, "renew", kit.at(mine, 1))
        await _claim(mine, "cart-x")
        claims = await peer.claim_due(kit.at(peer, 1), 10)
        assert [claim.hold.id for claim in claims] == [other.id]

    @pytest.mark.asyncio
    async def test_due_work_of_a_claimed_cart_is_put_back_to_the_lease_end(
        self, kit: StoreKit
    ) -> None:
        mine = await kit.store()
        assert mine.shared
        peer = await kit.store()
        hold = kit.hold("cart-x")
        await mine.save(hold, "renew", kit.at(mine, 1))
        await _claim(mine, "cart-x")
        await peer.claim_due(kit.at(peer, 1), 10)
        assert await peer.next_due() == pytest.approx(kit.at(peer, CART_LEASE), abs=0.01)

    @pytest.mark.asyncio
    async def test_claimer_is_not_handed_due_work_of_its_claimed_cart_either(
        self, kit: StoreKit
    ) -> None:
        mine = await kit.store()
        assert mine.shared
        hold = kit.hold("cart-x")
        await mine.save(hold, "renew", kit.at(mine, 1))
        await _claim(mine, "cart-x")
        assert await mine.claim_due(kit.at(mine, 1), 10) == []

    @pytest.mark.asyncio
    async def test_peer_is_handed_the_work_once_the_claim_is_released(
        self, kit: StoreKit
    ) -> None:
        mine = await kit.store()
        assert mine.shared
        peer = await kit.store()
        hold = kit.hold("cart-x")
        await mine.save(hold, "renew", kit.at(mine, 1))
        claim = await _claim(mine, "cart-x")
        assert await peer.claim_due(kit.at(peer, 1), 10) == []
        assert await mine.release_cart(claim)
        [due] = await peer.claim_due(kit.at(peer, CART_LEASE), 10)
        assert (due.hold.id, due.action) == (hold.id, "renew")

    @pytest.mark.asyncio
    async def test_peer_is_handed_the_work_once_the_claim_lapsed(self, kit: StoreKit) -> None:
        mine = await kit.store()
        assert mine.shared
        peer = await kit.store()
        hold = kit.hold("cart-x")
        await mine.save(hold, "renew", kit.at(mine, 1))
        await _claim(mine, "cart-x")
        assert await peer.claim_due(kit.at(peer, 1), 10) == []
        await kit.clock.advance(CART_LEASE)  # the claimer died: nobody extends its claim
        [due] = await peer.claim_due(kit.at(peer, 0), 10)
        assert due.hold.id == hold.id

    @pytest.mark.asyncio
    async def test_cart_is_taken_while_a_peer_has_one_of_its_holds_in_hand(
        self, kit: StoreKit
    ) -> None:
        mine = await kit.store()
        assert mine.shared
        peer = await kit.store()
        hold = kit.hold("cart-y")
        await mine.save(hold, "warn", kit.at(mine, 1))
        [due] = await peer.claim_due(kit.at(peer, 1), 10)  # in the peer's hands now
        taken = await mine.claim_cart("cart-y", CART_LEASE)
        assert isinstance(taken, CartTaken)
        assert not taken.checkout
        assert taken.free_in > 0
        assert await peer.save(due.hold, "drop", kit.at(peer, 400), due.fence)  # handed back
        await _claim(mine, "cart-y")

    @pytest.mark.asyncio
    async def test_holds_ordered_under_a_claim_end_for_the_peer_too(
        self, kit: StoreKit
    ) -> None:
        mine = await kit.store()
        assert mine.shared
        peer = await kit.store()
        hold = kit.hold("cart-z")
        await mine.save(hold, "renew", kit.at(mine, 100))
        [seen] = await peer.cart_holds("cart-z")
        claim = await _claim(mine, "cart-z")
        hold.state = HoldState.ORDERED
        await mine.forget(hold, hold._fence)
        await mine.release_cart(claim)
        assert await peer.cart_holds("cart-z") == []
        assert seen.state is HoldState.ORDERED  # the peer's own object follows
        assert await peer.claim_due(kit.at(peer, LONG_AFTER), 10) == []

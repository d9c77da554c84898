"""A checkout's claim on its cart survives a late heartbeat unless another worker took it.

The claims are driven by hand on a ``FakeClock`` (no scheduler), so a heartbeat
that comes after the lease ran out (a stalled loop or host) is one call.
"""

from __future__ import annotations

import logging

import pytest

from openticket_async import HoldPolicy
from openticket_async._checkout import CheckoutClaims
from openticket_async.stores import CartClaim, CartTaken, MemoryStore, claim_lease
from openticket_async.testing import FakeClock

pytestmark = pytest.mark.asyncio

POLICY = HoldPolicy()
LEASE = claim_lease(POLICY)


async def claims_on_memory() -> tuple[CheckoutClaims, MemoryStore, FakeClock]:
    clock = FakeClock()
    store = MemoryStore()
    store.bind(clock, POLICY)
    return CheckoutClaims(store, clock, POLICY, wake=lambda _at: None), store, clock


async def test_a_late_heartbeat_takes_the_cart_again_when_nobody_else_did(
    caplog: pytest.LogCaptureFixture,
) -> None:
    claims, store, clock = await claims_on_memory()
    first = await claims.claim("cart-1")
    await clock.advance(LEASE * 2)  # the heartbeat stalled past the lease

    with caplog.at_level(logging.WARNING, logger="openticket_async.manager"):
        next_beat = await claims.keep(clock.now())

    assert next_beat is not None  # still held, and kept from now on
    assert caplog.records == []
    assert isinstance(await store.claim_cart("cart-1", LEASE), CartTaken)
    await claims.release(first)  # releases the claim taken again, not only the first
    assert isinstance(await store.claim_cart("cart-1", LEASE), CartClaim)


async def test_a_late_heartbeat_gives_up_a_cart_another_worker_claimed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    claims, store, clock = await claims_on_memory()
    first = await claims.claim("cart-1")
    await clock.advance(LEASE * 2)
    other = await store.claim_cart("cart-1", LEASE)  # another checkout got in meanwhile
    assert isinstance(other, CartClaim)

    with caplog.at_level(logging.WARNING, logger="openticket_async.manager"):
        next_beat = await claims.keep(clock.now())

    assert next_beat is None
    assert ["lapsed before its end" in r.getMessage() for r in caplog.records] == [True]
    await claims.release(first)  # a stale claim cannot end the other one
    assert isinstance(await store.claim_cart("cart-1", LEASE), CartTaken)

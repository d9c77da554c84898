"""The store conformance suite on both stores: MemoryStore and RedisStore (a real redis-server)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from openticket_async.stores import MemoryStore, ReservationStore
from openticket_async.stores.redis import RedisStore
from openticket_async.testing.store_conformance import SharedStoreConformance, StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    def store_factory(self) -> Callable[[], ReservationStore]:
        return MemoryStore


class TestRedisStore(SharedStoreConformance):
    @pytest.fixture
    def store_factory(self, redis_url: str, redis_prefix: str) -> Callable[[], ReservationStore]:
        return lambda: RedisStore(redis_url, prefix=redis_prefix)

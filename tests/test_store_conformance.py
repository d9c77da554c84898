"""The store conformance suite on every store: MemoryStore, and RedisStore on a real
redis-server (one shard, and split in shards) and on a real three-primary Redis Cluster."""

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


class TestShardedRedisStore(SharedStoreConformance):
    @pytest.fixture
    def store_factory(self, redis_url: str, redis_prefix: str) -> Callable[[], ReservationStore]:
        return lambda: RedisStore(redis_url, prefix=redis_prefix, shards=4)


class TestRedisClusterStore(SharedStoreConformance):
    @pytest.fixture
    def store_factory(
        self, redis_cluster_url: str, redis_prefix: str
    ) -> Callable[[], ReservationStore]:
        return lambda: RedisStore(redis_cluster_url, prefix=redis_prefix)

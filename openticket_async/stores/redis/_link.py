"""The one module that imports redis (redis-py): the client, its retries, our errors.

The rest of the package never imports redis. It gets a client from
:func:`connect` (tuned for the store; a ``redis://`` URL, a
``redis+sentinel://`` URL for the primary a Sentinel group names, or a
``redis+cluster://`` URL for a Redis Cluster) or from the caller, a
:class:`Link` for it from :func:`link_for`, closes what it made with
:func:`close`, and awaits every command through :meth:`Link.call`;
the aliases :data:`Client` and :data:`Pipeline` name what it holds in
annotations (the store's Lua scripts are ``._scripting``'s). So redis-py's
exception classes and its pool and retry setup live in one place, and both
stores (holds and tokens) import ``connect`` from here instead of from each other.

Every command goes through :meth:`Link.call`, which

- turns the client's errors into :class:`~openticket_async.stores.redis.StoreUnavailable`;
- logs an outage once when it starts and once when it ends, not per command;
- counts commands in flight, so a virtual clock the store registers this link
  with (as a busy probe) never moves time while a store command is still on
  the wire. Blocking reads (``watch``) are not counted: they wait for
  something to happen, they are not work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, TypeAlias, TypeVar
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
import redis.exceptions as redis_errors
from redis.asyncio.client import Pipeline as _Pipeline
from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..._exceptions import InvalidArgument, StoreUnavailable

__all__ = ["CLUSTER_SCHEME", "SENTINEL_SCHEME", "Client", "Link", "Pipeline", "close", "connect",
           "is_cluster", "is_noscript", "link_for", "queue_time"]

T = TypeVar("T")

#: A ``redis.asyncio`` client (one Redis, or a cluster), as the store is given one or makes one.
Client: TypeAlias = aioredis.Redis | RedisCluster
#: A non-transactional pipeline of a :data:`Client` (several commands, one round trip per
#: node: a cluster's pipeline sends each command to the node of its first key's slot).
Pipeline: TypeAlias = _Pipeline | ClusterPipeline
logger = logging.getLogger("openticket_async.stores.redis")

# A client made from a URL fails fast, so an outage never stalls the scheduler.
_CONNECT_TIMEOUT, _COMMAND_TIMEOUT = 1.0, 2.0
#: Connections per store made from a URL: renewal workers, scheduler and publisher.
MAX_CONNECTIONS = 64
# The client's errors where a later try may work; every other RedisError is a refusal.
_TRANSIENT: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
# Answers while a failover is under way (CLUSTERDOWN, MASTERDOWN, TRYAGAIN, READONLY
# from a primary turned replica): an outage (writes kept for the replay), no refusal.
_PASSING = (redis_errors.ClusterDownError, redis_errors.ReadOnlyError, redis_errors.TryAgainError)


#: The URL scheme of a Sentinel group: ``redis+sentinel://[[user]:password@]host:port[,host:port
#: ...]/service[/db]`` (port 26379 when left out; the password is the data nodes').
SENTINEL_SCHEME = "redis+sentinel"
#: The URL scheme of a Redis Cluster: ``redis+cluster://[[user]:password@]host:port[,host:port
#: ...]`` (any of its nodes; the client finds the others; port 6379 when left out).
CLUSTER_SCHEME = "redis+cluster"


def _tuning() -> dict[str, Any]:
    return {
        "max_connections": MAX_CONNECTIONS,
        "timeout": _COMMAND_TIMEOUT,
        "decode_responses": True,
        "socket_connect_timeout": _CONNECT_TIMEOUT,
        "socket_timeout": _COMMAND_TIMEOUT,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
    }


def connect(url: str) -> Client:
    """A client for ``url`` tuned for the store: short timeouts, two quick retries.

    Its pool holds up to ``MAX_CONNECTIONS`` connections; a burst beyond that
    waits for a free one (up to the command timeout) instead of failing. For a
    ``redis+sentinel://`` URL the client follows the group's primary: after a
    failover its next connection goes to the new one. For a ``redis+cluster://``
    URL it is a cluster client: each command goes to the node that serves its
    key's slot, and MOVED/ASK redirections and a topology change after a
    failover are followed by redis-py (up to ``MAX_CONNECTIONS`` per node).
    Raises InvalidArgument (a ValueError) for a URL the store cannot use: an
    unknown scheme, a port or database that is not a number, a Sentinel URL
    without hosts or service name, a cluster URL without hosts or with a
    database other than 0. The message never quotes the URL, which may carry
    a password.
    """
    try:
        scheme = urlsplit(url).scheme
        if scheme == SENTINEL_SCHEME:
            return _sentinel_client(url)
        if scheme == CLUSTER_SCHEME:
            return _cluster_client(url)
        pool = aioredis.BlockingConnectionPool.from_url(url, **_tuning())
    except InvalidArgument:
        raise
    except ValueError as error:  # redis-py's and the URL parser's, which name no secret
        raise InvalidArgument(f"not a Redis URL the store can use: {error}") from None
    return aioredis.Redis(connection_pool=pool)


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's pool (it asks the sentinels where the primary is), blocking when full."""


def _hosts(netloc: str, default_port: int) -> tuple[list[tuple[str, int]], str, str]:
    """(host, port) pairs, user name and password of a URL's comma-separated netloc."""
    userinfo, _, hosts = netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    found = []
    for host in filter(None, hosts.split(",")):
        name, colon, port = host.rpartition(":")
        found.append((name, int(port)) if colon else (port, default_port))
    return found, unquote(username), unquote(password)


def _cluster_client(url: str) -> Client:
    parts = urlsplit(url)
    nodes, username, password = _hosts(parts.netloc, 6379)
    path = [part for part in parts.path.split("/") if part]
    if not nodes or path not in ([], ["0"]):
        raise InvalidArgument("a cluster URL needs hosts and no database but 0: "
                         "redis+cluster://host:port[,host:port...]")
    tuning = _tuning()
    del tuning["timeout"]  # a blocking pool's wait: a cluster client has none
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in nodes],
        username=username or None, password=password or None, **tuning,
    )


def _sentinel_client(url: str) -> Client:
    parts = urlsplit(url)
    sentinels, username, password = _hosts(parts.netloc, 26379)
    path = [unquote(part) for part in parts.path.split("/") if part]
    if not sentinels or not path:
        raise InvalidArgument("a Sentinel URL needs hosts and a service name: "
                         "redis+sentinel://host:port[,host:port...]/service[/db]")
    timeouts = {"socket_timeout": _CONNECT_TIMEOUT, "socket_connect_timeout": _CONNECT_TIMEOUT}
    sentinel = Sentinel(sentinels, sentinel_kwargs=timeouts)
    return sentinel.master_for(  # type: ignore[no-any-return]
        path[0], connection_pool_class=_BlockingSentinelPool,
        db=int(path[1]) if len(path) > 1 else 0, username=username or None,
        password=password or None, **_tuning(),
    )


def queue_time(pipe: Pipeline, key: str) -> None:
    """Queue ``TIME`` on ``pipe``: on a cluster, from the primary that serves ``key``.

    So a store reads the clock of one node, the one its skew is taken from.
    """
    if isinstance(pipe, ClusterPipeline):
        try:
            node = pipe.cluster_client.get_node_from_key(key)
        except (RedisError, RedisClusterException):  # no slot map yet: any node's clock does
            node = None
        if node is not None:
            pipe.execute_command("TIME", target_nodes=node)
            return
    pipe.execute_command("TIME")  # (a cluster's pipeline refuses its time() method)


def is_cluster(client: Client) -> bool:
    """Whether ``client`` talks to a Redis Cluster."""
    return isinstance(client, RedisCluster)


async def close(client: Client) -> None:
    """Close a client :func:`connect` made (and its sentinels' connections, if any)."""
    if isinstance(client, RedisCluster):
        await client.aclose()
        return
    pool = client.connection_pool
    await client.aclose(close_connection_pool=True)
    if isinstance(pool, SentinelConnectionPool):
        await pool.sentinel_manager.aclose()


def link_for(client: Client) -> Link:
    """A :class:`Link` naming ``client``'s server, mapping redis errors to StoreUnavailable."""
    if isinstance(client, RedisCluster):
        nodes = client.nodes_manager.startup_nodes
        return Link("cluster " + ",".join(sorted(nodes)))
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    if isinstance(pool, SentinelConnectionPool):
        return Link(f"sentinel service {pool.service_name}/{kwargs.get('db', 0)}")
    where = f"{kwargs.get('host', kwargs.get('path', '?'))}:{kwargs.get('port', '')}"
    where += f"/{kwargs.get('db', 0)}"
    return Link(where)


class Link:
    """Calls into one Redis client with error mapping and a busy count.

    ``where`` names the server in messages (host:port/db, never a password).
    ``calls`` counts the operations awaited: Redis round trips (a pipeline is one).
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.calls = 0
        self._busy = 0
        self._idle: asyncio.Event | None = None
        #: Whether the last command failed to reach Redis; the next answer clears it
        #: (read through ``RedisStore.available``).
        self.down = False

    async def call(self, op: Awaitable[T], *, busy: bool = True) -> T:
        """Await one Redis operation.

        Raises StoreUnavailable if the connection fails or times out
        (``refused=False``) or Redis answers with an error (``refused=True``).
        """
        self.calls += 1
        if busy:
            self._busy += 1
        try:
            result = await op
        except _TRANSIENT as error:
            if not self.down:
                self.down = True
                logger.warning("Redis at %s is unreachable: %s", self.where, error)
            raise StoreUnavailable(f"Redis at {self.where} is unreachable: {error}") from error
        except RedisError as error:
            raise self.refusal(error) from error
        finally:
            if busy:
                self._busy -= 1
                if self._busy == 0 and self._idle is not None:
                    self._idle.set()
                    self._idle = None
        if self.down:
            self.down = False
            logger.warning("Redis at %s is reachable again", self.where)
        return result

    def refusal(self, error: BaseException) -> StoreUnavailable:
        """The StoreUnavailable for an error Redis answered: ``refused`` unless it passes."""
        if isinstance(error, _PASSING):
            return StoreUnavailable(f"Redis at {self.where} is not serving now: {error}")
        return StoreUnavailable(f"Redis at {self.where} refused a command: {error}", refused=True)

    def busy(self) -> bool:
        """Whether a store command is on the wire (the FakeClock busy probe)."""
        return self._busy > 0

    async def wait_idle(self) -> None:
        """Return once no store command is on the wire."""
        while self._busy > 0:
            if self._idle is None:
                self._idle = asyncio.Event()
            await self._idle.wait()


def is_noscript(answer: object) -> bool:
    """Whether ``answer`` (an answer or an error) is Redis's NOSCRIPT: it lacks the script."""
    return isinstance(answer, NoScriptError)

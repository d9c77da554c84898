"""RedisTokenStore: OAuth2 tokens shared by processes that refresh once between them.

OpenTicket's refresh tokens are single-use: two processes refreshing with the
same one lose the session. :meth:`RedisTokenStore.refresh` (the
:class:`~openticket_async._auth.TokenStore` method ``OAuth2`` calls) therefore
takes a Redis lock (``SET NX PX`` with a random holder token), re-reads the
shared token set and refreshes only if nobody else did meanwhile; the new set is
written before the lock is released, so whoever waited reads it instead of
refreshing again. While the grant runs, the holder extends its lock every third
of ``lock_ttl``; a holder that dies loses the lock after ``lock_ttl``.

On a Redis Cluster the lock lives in the token set's hash slot (the key's own
hash tag, or the key as one), so both sit on one primary and fail over together.

Waiting for the lock polls (a refresh happens every few days; a pub/sub wake-up
would not pay for itself) in real time: token refreshes are not on the
manager's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from datetime import timedelta
from typing import TYPE_CHECKING

import anyio

from ..._config import seconds
from ..._exceptions import InvalidArgument, StoreUnavailable
from ..._models import TokenSet
from ..shared import decode_token, encode_token
from ._link import Client, Link, close, connect, is_cluster, link_for
from ._scripts import LOCK_EXTEND, LOCK_RELEASE

if TYPE_CHECKING:
    from ..._auth import Grant

__all__ = ["RedisTokenStore", "lock_key"]

logger = logging.getLogger("openticket_async.stores.redis")

#: First and longest real pause between two looks at a busy lock.
POLL_FIRST, POLL_CAP = 0.02, 0.25
#: Tries to share freshly granted tokens before giving up on Redis.
SAVE_TRIES = 3


def _newer(stored: TokenSet, stale: TokenSet) -> bool:
    """Whether ``stored`` replaced ``stale`` (a refresh happened since ``stale``)."""
    changed = (
        stored.access_token != stale.access_token or stored.refresh_token != stale.refresh_token
    )
    return changed and stored.expires_at >= stale.expires_at


def _has_tag(key: str) -> bool:
    opening = key.find("{")
    return opening >= 0 and key.find("}", opening + 2) >= 0


def lock_key(key: str, *, cluster: bool) -> str:
    """The refresh lock of the token set at ``key``: ``key + ":lock"``.

    On a cluster, a ``key`` without a hash tag is made the lock's tag
    (``{key}:lock``), so the lock hashes to the key's own slot; one with a tag
    keeps it. (A key with braces but no tag would not share the slot: refused.)
    Raises InvalidArgument for such a key on a cluster.
    """
    if not cluster or _has_tag(key):
        return key + ":lock"
    if "{" in key or "}" in key:
        raise InvalidArgument(f"a token key on a cluster needs a hash tag or no braces: {key!r}")
    return "{" + key + "}:lock"


class RedisTokenStore:
    """A :class:`~openticket_async._auth.TokenStore` shared through Redis.

    ``redis`` is a ``redis.asyncio.Redis`` client (never closed here) or a URL.
    ``key`` is where the token set lives (the lock is ``key + ":lock"``, on a
    cluster hash-tagged into the key's slot: see :func:`lock_key`); give
    each OAuth2 client application its own. ``lock_ttl`` bounds how long a dead
    holder blocks others; ``wait`` how long to wait for another process's
    refresh. Pass the store to ``OAuth2(..., store=...)``; :meth:`load` gives the
    latest shared token set at start-up.

    Raises InvalidArgument for a bad argument.
    """

    def __init__(
        self,
        redis: Client | str,
        *,
        key: str = "openticket:token:default",
        lock_ttl: float | timedelta = 30.0,
        wait: float | timedelta = 60.0,
    ) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidArgument("key must be a non-empty string")
        self._lock_ttl = seconds(lock_ttl)
        self._wait = seconds(wait)
        if not self._lock_ttl > 0 or self._wait < 0:
            raise InvalidArgument("lock_ttl must be > 0 and wait >= 0")
        self._own_client = isinstance(redis, str)
        self._redis: Client = connect(redis) if isinstance(redis, str) else redis
        self._link: Link = link_for(self._redis)
        self._key = key
        self._lock = lock_key(key, cluster=is_cluster(self._redis))
        self._unlock = self._redis.register_script(LOCK_RELEASE)
        self._extend = self._redis.register_script(LOCK_EXTEND)

    def __repr__(self) -> str:
        return f"RedisTokenStore({self._link.where!r}, key={self._key!r})"

    async def load(self) -> TokenSet | None:
        """The shared token set, or None if none was saved.

        Raises StoreUnavailable if Redis is unreachable or the value unreadable.
        """
        text = await self._link.call(self._redis.get(self._key), busy=False)
        if text is None:
            return None
        try:
            return decode_token(text)
        except (ValueError, KeyError, TypeError):
            raise StoreUnavailable(f"the token set at {self._key} is unreadable") from None

    async def save(self, token: TokenSet) -> None:
        """Share ``token`` (for example the one from the first login).

        Raises StoreUnavailable if Redis is unreachable.
        """
        await self._link.call(self._redis.set(self._key, encode_token(token)), busy=False)

    async def refresh(self, stale: TokenSet, grant: Grant) -> TokenSet:
        """A fresh token set for ``stale``: the shared one if someone refreshed, else ``grant``'s.

        Raises what ``grant`` raises, and StoreUnavailable if Redis is
        unreachable or another process holds the lock longer than ``wait``.
        """
        holder = os.urandom(12).hex()
        lock = self._lock
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._wait
        pause = POLL_FIRST
        ttl_ms = max(int(self._lock_ttl * 1000), 1)
        while not await self._link.call(
            self._redis.set(lock, holder, nx=True, px=ttl_ms), busy=False
        ):
            shared = await self.load()
            if shared is not None and _newer(shared, stale):
                return shared
            if loop.time() >= give_up:
                raise StoreUnavailable(
                    f"another process held the token refresh lock for over {self._wait} s"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, POLL_CAP)
        try:
            shared = await self.load()
            if shared is not None and _newer(shared, stale):
                return shared
            done = asyncio.Event()
            keeper = loop.create_task(self._keep(lock, holder, ttl_ms, done))
            try:
                fresh = await grant(stale)
            finally:
                done.set()
                await asyncio.shield(keeper)
            await self._share(fresh)
            return fresh
        finally:
            await self._release(lock, holder)

    async def _keep(self, lock: str, holder: str, ttl_ms: int, done: asyncio.Event) -> None:
        # Ends on ``done``, not on cancel: redis-py can absorb a cancellation.
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._lock_ttl / 3):
                    await done.wait()
            if done.is_set():
                return
            with contextlib.suppress(StoreUnavailable):
                await self._link.call(self._extend([lock], [holder, str(ttl_ms)]), busy=False)

    async def _share(self, fresh: TokenSet) -> None:
        for attempt in range(1, SAVE_TRIES + 1):
            try:
                await self.save(fresh)
            except StoreUnavailable:
                if attempt == SAVE_TRIES:
                    # The old refresh token is spent: this process goes on with the
                    # new one (on_refresh has seen it); the others will be refused.
                    logger.exception("refreshed tokens could not be shared through Redis")
            else:
                return

    async def _release(self, lock: str, holder: str) -> None:
        # shielded: a cancelled refresh must still free the lock for the others
        with anyio.CancelScope(shield=True):
            try:
                await self._link.call(self._unlock([lock], [holder]), busy=False)
            except StoreUnavailable as error:
                logger.warning("token refresh lock not released (it expires by itself): %s", error)

    async def aclose(self) -> None:
        """Close the client if this store made it from a URL."""
        if self._own_client:
            await close(self._redis)

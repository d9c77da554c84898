"""One Redis client as the Redis store uses it: typed errors, outage logging, busy count.

Every command goes through :meth:`Link.call`, which

- turns the client's errors into :class:`StoreUnavailable` (the classes to catch
  are handed in by ``stores.redis``, the one module that imports redis);
- logs an outage once when it starts and once when it ends, not per command;
- counts commands in flight, so a :class:`~openticket_async.testing.FakeClock`
  that the store registers this link with (as a busy probe) never moves virtual
  time while a store command is still on the wire. Blocking reads (``watch``)
  are not counted: they wait for something to happen, they are not work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TypeVar

from ..._exceptions import StoreUnavailable

__all__ = ["Link", "StoreUnavailable"]

T = TypeVar("T")

logger = logging.getLogger("openticket_async.stores.redis")


class Link:
    """Calls into one Redis client with error mapping and a busy count.

    ``where`` names the server in messages (host:port/db, never a password);
    ``transient`` are the client's connection and timeout errors; ``refused``
    its other errors.
    """

    def __init__(
        self,
        where: str,
        transient: tuple[type[BaseException], ...],
        refused: tuple[type[BaseException], ...],
    ) -> None:
        self.where = where
        self._transient = transient
        self._refused = refused
        self._busy = 0
        self._idle: asyncio.Event | None = None
        self.down = False

    async def call(self, op: Awaitable[T], *, busy: bool = True) -> T:
        """Await one Redis operation.

        Raises StoreUnavailable if the connection fails or times out
        (``refused=False``) or Redis answers with an error (``refused=True``).
        """
        if busy:
            self._busy += 1
        try:
            result = await op
        except self._transient as error:
            if not self.down:
                self.down = True
                logger.warning("Redis at %s is unreachable: %s", self.where, error)
            raise StoreUnavailable(f"Redis at {self.where} is unreachable: {error}") from error
        except self._refused as error:
            raise StoreUnavailable(
                f"Redis at {self.where} refused a command: {error}", refused=True
            ) from error
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

    def busy(self) -> bool:
        """Whether a store command is on the wire (the FakeClock busy probe)."""
        return self._busy > 0

    async def wait_idle(self) -> None:
        """Return once no store command is on the wire."""
        while self._busy > 0:
            if self._idle is None:
                self._idle = asyncio.Event()
            await self._idle.wait()

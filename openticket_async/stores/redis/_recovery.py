"""How one RedisStore rides out Redis outages and restarts (rules 4 and 5 of stores.redis).

- Outage: while Redis is unreachable, the write-backs of holds Redis already
  knows are kept here, the latest per hold, and replayed once it answers again,
  in the order the holds first needed one. While a hold has a write-back kept,
  its newer ones replace it here too, so an older one can never land last.
  Each shard (see ``._keys``) replays on its own: on a cluster, a primary that
  fails over holds up the write-backs of its shards only.
- Restart: when a claim finds that a shard lost its data (a new epoch), every
  hold of that shard known here is written back with restore semantics: only
  where the record is missing or has a smaller fence, so the freshest copy
  among the workers wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..._exceptions import StoreUnavailable
from ..._hold import Hold
from ..shared import LocalHolds
from ._link import Client, Link
from ._scripting import Script, run_scripts

__all__ = ["Recovery"]

logger = logging.getLogger("openticket_async.stores.redis")

#: Builds a hold's SAVE arguments: (hold, action, due) -> (keys, args).
SaveArgs = Callable[[Hold, str, float], tuple[list[bytes], list[bytes]]]


class _Write:
    __slots__ = ("args", "forget", "hold", "keys", "shard")

    def __init__(
        self, hold: Hold, keys: list[bytes], args: list[bytes], *, forget: bool, shard: int
    ) -> None:
        self.hold = hold
        self.keys = keys
        self.args = args
        self.forget = forget
        self.shard = shard


class Recovery:
    """Kept write-backs and restores; ``scripts`` are the store's SAVE and FORGET.

    ``shard_of`` gives a cart's shard (see ``._keys``).
    """

    def __init__(
        self,
        client: Client,
        link: Link,
        scripts: Mapping[str, Script],
        local: LocalHolds,
        shard_of: Callable[[str], int],
    ) -> None:
        self._client = client
        self._link = link
        self._save = scripts["save"]
        self._forget = scripts["forget"]
        self._local = local
        self._shard_of = shard_of
        self._kept: dict[str, _Write] = {}

    def keeps(self, hold_id: str) -> bool:
        """Whether a write-back of ``hold_id`` waits for Redis."""
        return hold_id in self._kept

    def keep(self, hold: Hold, keys: list[bytes], args: list[bytes], *, forget: bool) -> None:
        """Keep a write-back (SAVE or FORGET arguments) until Redis answers."""
        shard = self._shard_of(hold.cart_id)
        self._kept[hold.id] = _Write(hold, keys, args, forget=forget, shard=shard)

    def blocked(self) -> set[int]:
        """The shards with write-backs still kept: their due work waits for them."""
        return {write.shard for write in self._kept.values()}

    async def replay(self) -> None:
        """Write the kept write-backs, in order within each shard.

        A shard that is still unreachable keeps the rest of its write-backs and
        the others go on; then raises StoreUnavailable. A write-back Redis
        refuses is logged and dropped.
        """
        unreachable: StoreUnavailable | None = None
        failed: set[int] = set()
        progress = True
        while progress:  # a write-back kept meanwhile is replayed in a second pass
            progress = False
            for hold_id in list(self._kept):
                write = self._kept.get(hold_id)
                if write is None or write.shard in failed:
                    continue
                try:
                    accepted = await self._write(write)
                except StoreUnavailable as error:
                    unreachable = unreachable or error
                    failed.add(write.shard)
                    continue
                progress = True
                self._written(hold_id, write, accepted)
        if unreachable is not None:
            raise unreachable

    async def _write(self, write: _Write) -> object:
        script = self._forget if write.forget else self._save
        try:
            return await self._link.call(script(write.keys, write.args))
        except StoreUnavailable as error:
            if not error.refused:
                raise
            logger.exception("a kept write-back of hold %s was refused; dropped", write.hold.id)
            return False

    def _written(self, hold_id: str, write: _Write, accepted: object) -> None:
        if self._kept.get(hold_id) is write:
            del self._kept[hold_id]
        if not write.forget:
            plan = self._local.plans.get(write.hold)
            due = plan[1] if plan is not None else 0.0
            self._local.written(write.hold, due, accepted=bool(accepted), first=False)

    async def restore(self, save_args: SaveArgs, shard: int) -> int:
        """Write back every live hold of ``shard`` known here, in one round trip.

        Returns the largest write seq Redis acknowledged (0 if none was written).
        Raises StoreUnavailable if Redis is unreachable.
        """
        calls = []
        for hold, action, due in self._local.restorable():
            if hold.id not in self._kept and self._shard_of(hold.cart_id) == shard:
                keys, args = save_args(hold, action, due)
                calls.append((self._save, keys, args))
        answers = await run_scripts(self._client, self._link, calls)
        logger.warning("restored %d holds into Redis", len(calls))
        return max((int(answer) for answer in answers), default=0)

    def clear(self) -> None:
        """Drop what is kept (the store closed)."""
        self._kept.clear()

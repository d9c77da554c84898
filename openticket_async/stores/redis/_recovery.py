"""How one RedisStore rides out Redis outages and restarts (rules 4 and 5 of stores.redis).

- Outage: while Redis is unreachable, the write-backs of holds Redis already
  knows are kept here, the latest per hold, and replayed once it answers again,
  in the order the holds first needed one. While a hold has a write-back kept,
  its newer ones replace it here too, so an older one can never land last.
- Restart: when a claim finds that Redis lost its data (a new epoch), every hold
  known here is written back with restore semantics: only where the record is
  missing or has a smaller fence, so the freshest copy among the workers wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ..._exceptions import StoreUnavailable
from ..._hold import Hold
from ..shared import LocalHolds
from ._link import Link, Pipeline, Script

__all__ = ["Recovery"]

logger = logging.getLogger("openticket_async.stores.redis")

#: Builds a hold's SAVE arguments: (hold, action, due) -> (keys, args).
SaveArgs = Callable[[Hold, str, float], tuple[list[str], list[str]]]


class _Write:
    __slots__ = ("args", "forget", "hold", "keys")

    def __init__(self, hold: Hold, keys: list[str], args: list[str], *, forget: bool) -> None:
        self.hold = hold
        self.keys = keys
        self.args = args
        self.forget = forget


class Recovery:
    """Kept write-backs and restores; ``scripts`` are the store's SAVE and FORGET."""

    def __init__(self, link: Link, scripts: Mapping[str, Script], local: LocalHolds) -> None:
        self._link = link
        self._save = scripts["save"]
        self._forget = scripts["forget"]
        self._local = local
        self._kept: dict[str, _Write] = {}

    def keeps(self, hold_id: str) -> bool:
        """Whether a write-back of ``hold_id`` waits for Redis."""
        return hold_id in self._kept

    def keep(self, hold: Hold, keys: list[str], args: list[str], *, forget: bool) -> None:
        """Keep a write-back (SAVE or FORGET arguments) until Redis answers."""
        self._kept[hold.id] = _Write(hold, keys, args, forget=forget)

    async def replay(self) -> None:
        """Write the kept write-backs, in order.

        Raises StoreUnavailable if Redis is still unreachable (the rest stays
        kept); a write-back Redis refuses is logged and dropped.
        """
        while self._kept:
            hold_id, write = next(iter(self._kept.items()))
            script = self._forget if write.forget else self._save
            try:
                accepted = await self._link.call(script(write.keys, write.args))
            except StoreUnavailable as error:
                if not error.refused:
                    raise
                logger.exception("a kept write-back of hold %s was refused; dropped", hold_id)
                accepted = False
            if self._kept.get(hold_id) is write:
                del self._kept[hold_id]
            if not write.forget:
                plan = self._local.plans.get(write.hold)
                due = plan[1] if plan is not None else 0.0
                self._local.written(write.hold, due, accepted=bool(accepted), first=False)

    async def restore(self, pipe: Pipeline, save_args: SaveArgs) -> int:
        """Write back every live hold known here through ``pipe``, in one round trip.

        Returns the largest write seq Redis acknowledged (0 if none was written).
        Raises StoreUnavailable if Redis is unreachable.
        """
        count = 0
        for hold, action, due in self._local.restorable():
            if hold.id not in self._kept:
                keys, args = save_args(hold, action, due)
                await self._save(keys, args, client=pipe)
                count += 1
        answers = await self._link.call(pipe.execute()) if count else []
        logger.warning("restored %d holds into Redis", count)
        return max((int(answer) for answer in answers), default=0)

    def clear(self) -> None:
        """Drop what is kept (the store closed)."""
        self._kept.clear()

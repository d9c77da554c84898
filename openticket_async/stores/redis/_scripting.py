"""The store's Lua scripts in Redis: run by SHA1, loaded only all together.

Theory of operation
-------------------
The store runs its Lua scripts by SHA1 (EVALSHA), not by their text, which
would add kilobytes to every write-back. Redis keeps scripts in a cache that a
restart, the promotion of a replica and SCRIPT FLUSH empty; a call of a script
it does not know answers NOSCRIPT and does nothing. A pipeline is no
transaction: a call answering NOSCRIPT does not stop the calls after it, so
sending it again afterwards runs it *after* them: a FORGET of a hold before an
earlier SAVE of it, whose tombstone refuses the save (reported as another
worker's, though this worker owns the hold).

So a store's scripts form one :class:`ScriptSet`, and Redis is only ever given
all of them at once (the set decides when; nothing else loads them, not even a
:class:`Script` called alone, which redis-py would load alone):

1. Before the first call of any of them, the set loads them all.
2. Whenever a call answers NOSCRIPT, the set loads them all again (one load for
   a burst of NOSCRIPTs, made after all of them), then sends the calls that
   answered it again, in their order (a pipeline's in one pipeline).
3. A load is one pipeline of SCRIPT LOAD; on a cluster, whose pipeline refuses
   SCRIPT LOAD, one command per script, which redis-py sends to every primary.

Invariant: once loaded, a Redis (each primary of a cluster) knows all of a set
or none of it. So a pipeline finds all its scripts (every call runs in place),
or none (all its calls run again, in order), or, if the cache is emptied while
it runs, its first calls run and its last ones answer NOSCRIPT: the calls sent
again all come after those that ran. Either way its calls apply in the order
they were made. The cost: one round trip at a store's first script call, two
after a NOSCRIPT (the load, the calls again), none on the hot path.

A pipeline can still mix (a call runs after one that answered NOSCRIPT) when
someone else loads scripts while it runs into an emptied cache (Redis serves
other clients between the chunks it reads of a pipeline, 16 KiB at most: after
a restart one worker's load can land between two calls of another's), or loads
only some of them (a worker of another version of this package, a person).
Then a SAVE re-sent after a FORGET of its hold is refused, as above: no data is
lost, the save reports False. On a cluster the rule holds per primary, and
calls that must keep their order touch one hold: one slot, one primary. A
primary that dies mid-pipeline answers none of its calls from some point on;
those fail (StoreUnavailable: the store keeps the writes for its replay) or
redis-py re-sends them, in order, to the replica promoted in its place, whose
cache holds all of the set or none of it. A slot that moves mid-pipeline
redirects its calls from then on; redis-py re-sends them one by one after the
pipeline, in order: after those that ran.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias

from ..._exceptions import StoreUnavailable
from ._link import Client, Link, is_cluster, is_noscript

__all__ = ["Call", "Script", "ScriptSet", "pipelined", "run_scripts"]


def _sha(source: str) -> str:
    # the name Redis files a script under (SCRIPT LOAD's answer): no security use
    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


#: One script call: the script, its keys, its arguments.
Call: TypeAlias = tuple["Script", Sequence[bytes | str], Sequence[bytes | str]]
# Sends script calls (one pipeline, or one call alone): their answers, errors in place.
_Send: TypeAlias = Callable[[Sequence[Call]], Awaitable[list[Any]]]


class Script:
    """One Lua script of a :class:`ScriptSet` (``family``): its ``source``, run by its ``sha``."""

    __slots__ = ("family", "sha", "source")

    def __init__(self, family: ScriptSet, sha: str, source: str) -> None:
        self.family, self.sha, self.source = family, sha, source

    async def __call__(self, keys: Sequence[bytes | str], args: Sequence[bytes | str]) -> Any:
        """Run the script alone; its answer. Await it through :meth:`Link.call`.

        Raises the client's error if Redis refuses the call or cannot be
        reached, StoreUnavailable if the set had to be loaded and could not.
        """
        family = self.family
        await family.ready()
        calls: list[Call] = [(self, keys, args)]
        [answer] = await family.rerun_missing(calls, await family.alone(calls), family.alone)
        if isinstance(answer, BaseException):
            raise answer
        return answer


class ScriptSet(dict[str, Script]):
    """The Lua scripts of one store by name (``sources``: their texts), loaded into Redis
    only all together, when the set decides (see the theory of operation above)."""

    def __init__(self, client: Client, link: Link, sources: Mapping[str, str]) -> None:
        super().__init__(
            (name, Script(self, _sha(source), source))
            for name, source in sources.items()
        )
        self._client, self._link = client, link
        # Loads, one at a time: how many, whether one succeeded, the last one's failure.
        self._loads, self._loaded = 0, False
        self._failure: StoreUnavailable | None = None
        self._loading = asyncio.Lock()

    async def ready(self) -> None:
        """Load the set unless it was loaded already: await it before sending a call.

        Raises StoreUnavailable as :meth:`Link.call` does.
        """
        if not self._loaded:
            async with self._loading:
                if not self._loaded:
                    await self._load()

    async def rerun_missing(
        self, calls: Sequence[Call], answers: list[Any], send: _Send
    ) -> list[Any]:
        """``answers`` (of ``calls``), each NOSCRIPT replaced by its call's answer sent again.

        After a NOSCRIPT the whole set is loaded again, then the calls that
        answered it are sent again with ``send``, in their order. If that fails,
        the error is their answer: StoreUnavailable, or NOSCRIPT again if Redis
        lost the scripts again meanwhile.
        """
        missing = [at for at, answer in enumerate(answers) if is_noscript(answer)]
        if not missing:
            return answers
        try:
            await self._reload(after=self._loads)
            again = await send([calls[at] for at in missing])
        except StoreUnavailable as error:
            again = [error] * len(missing)
        for at, answer in zip(missing, again, strict=True):
            answers[at] = answer
        return answers

    async def alone(self, calls: Sequence[Call]) -> list[Any]:
        """[The answer] of one call sent on its own; a NOSCRIPT answered, other errors raised."""
        [(script, keys, args)] = calls
        try:
            return [await self._client.evalsha(script.sha, len(keys), *keys, *args)]
        except Exception as error:
            if is_noscript(error):
                return [error]
            raise

    async def _reload(self, after: int) -> None:
        """Load the set, unless a load was made since ``after`` loads were: its outcome is ours.

        A burst of NOSCRIPT answers (a restart, a failover) thus costs one load
        made after all of them, not one each (nor a connection per script each).
        """
        async with self._loading:
            if self._loads > after:
                if self._failure is not None:
                    raise self._failure
                return
            await self._load()

    async def _load(self) -> None:  # holding self._loading
        self._loads += 1
        sources = [script.source for script in self.values()]
        loads: Awaitable[list[Any]]
        if is_cluster(self._client):
            # A cluster's pipeline refuses SCRIPT LOAD; the cluster client sends each to
            # every primary (all at once: one round trip's wait).
            loads = asyncio.gather(*(self._client.script_load(source) for source in sources))
        else:
            pipe = self._client.pipeline(transaction=False)
            for source in sources:
                pipe.script_load(source)
            loads = pipe.execute()
        try:
            await self._link.call(loads)
        except StoreUnavailable as error:
            self._failure = error
            raise
        self._failure, self._loaded = None, True


def pipelined(client: Client, calls: Sequence[Call]) -> Awaitable[list[Any]]:
    """Send ``calls`` in one pipeline on ``client``; await it (through :meth:`Link.call`)
    for their answers, an error in the place of each call that failed."""
    pipe = client.pipeline(transaction=False)
    for script, keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    return pipe.execute(raise_on_error=False)


async def run_scripts(client: Client, link: Link, calls: Sequence[Call]) -> list[Any]:
    """Run calls of one :class:`ScriptSet` in one pipeline; their answers, in order.

    One round trip per node; after a NOSCRIPT two more, to load the set and to
    send the calls that answered it again (see the theory of operation above). Raises
    StoreUnavailable if Redis is unreachable or refuses a call.
    """
    if not calls:
        return []
    family = calls[0][0].family

    async def send(some: Sequence[Call]) -> list[Any]:
        answers: list[Any] = await link.call(pipelined(client, some))
        return answers

    await family.ready()
    answers = await family.rerun_missing(calls, await send(calls), send)
    for answer in answers:
        if isinstance(answer, StoreUnavailable):
            raise answer
        if isinstance(answer, BaseException):
            raise link.refusal(answer)
    return answers

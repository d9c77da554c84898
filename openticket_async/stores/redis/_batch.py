"""ScriptBatch: the script calls of one turn of the event loop, sent in one pipeline.

Renewals come back in bursts and each writes its hold back with one script
call: sent together, they cost one round trip and one socket write instead of
one each. The calls of a batch apply in the order they were made, also when
Redis has lost its scripts (see :mod:`._scripting`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ..._exceptions import StoreUnavailable
from ._link import Client, Link
from ._scripting import Call, Script, pipelined

__all__ = ["ScriptBatch"]


class _Waiting(NamedTuple):
    """A call made to a :class:`ScriptBatch`, waiting for its turn's pipeline."""

    script: Script
    keys: list[bytes]
    args: list[bytes]
    shard: int
    future: asyncio.Future[Any]


class _Sent:
    """One script call of a batch's pipeline: one call made, or several merged."""

    __slots__ = ("args", "futures", "keys", "many", "script")

    def __init__(self, script: Script, many: Script | None) -> None:
        self.script = script
        self.many = many  # the merged form, if the script has one
        self.keys: list[bytes] = []
        self.args: list[bytes] = []
        self.futures: list[asyncio.Future[Any]] = []

    def merged(self) -> bool:
        """Whether this call carries several calls (one alone goes as it was made)."""
        return self.many is not None and len(self.futures) > 1

    def call(self) -> Call:
        """The script call sent: the merged form's for several calls."""
        script = self.many if self.many is not None and self.merged() else self.script
        return script, self.keys, self.args


class ScriptBatch:
    """Script calls made in one turn of the event loop, sent in one pipeline.

    The first call of a turn waits for that turn's others, then sends them all
    (as EVALSHA) on ``client``. ``merged`` maps a script to its form for
    several calls (taking their keys and arguments one call after another,
    answering the list of their answers, an error in the place of a call that
    failed): the calls of such a script made one after another in a turn, in
    one shard, go as one call of it. redis-py packs every argument and reads
    every answer of a pipeline in Python, about 120k instructions a command:
    more than the write-back itself.
    """

    def __init__(self, client: Client, link: Link, merged: Mapping[Script, Script]) -> None:
        self._client = client
        self._link = link
        self._merged = {single.sha: many for single, many in merged.items()}
        self._waiting: list[_Waiting] = []

    async def run(self, script: Script, keys: list[bytes], args: list[bytes], shard: int) -> Any:
        """Run ``script`` with the other calls of this turn; its answer.

        ``shard`` is the shard of every key the call touches. Raises
        StoreUnavailable as :meth:`Link.call` does.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(script, keys, args, shard, future))
        if len(self._waiting) == 1:
            batch: list[_Waiting] = []
            failure = None
            try:
                family = script.family
                await family.ready()
                sent, answers = await self._link.call(self._send(batch))
                calls = [one.call() for one in sent]
                self._settle(sent, await family.rerun_missing(calls, answers, self._again))
            except StoreUnavailable as error:
                failure = error
            finally:  # cancelled: nobody may be left waiting for a send that never comes
                batch += [] if batch else self._take()
                for waiting in batch:
                    if not waiting.future.done():
                        waiting.future.set_exception(
                            failure or StoreUnavailable("a batched write was cancelled")
                        )
        return await future

    def _take(self) -> list[_Waiting]:
        taken, self._waiting = self._waiting, []
        return taken

    def _merge(self, batch: list[_Waiting]) -> list[_Sent]:
        """The batch's script calls, in order; a run of mergeable calls is one per shard."""
        sent: list[_Sent] = []
        runs: dict[tuple[str, int], _Sent] = {}
        for script, keys, args, shard, future in batch:
            many = self._merged.get(script.sha)
            one = None if many is None else runs.get((script.sha, shard))
            if one is None:
                one = _Sent(script, many)
                sent.append(one)
                if many is None:
                    runs.clear()  # a later call may not move before this one
                else:
                    runs[script.sha, shard] = one
            one.keys += keys
            one.args += args
            one.futures.append(future)
        return sent

    async def _send(self, batch: list[_Waiting]) -> tuple[list[_Sent], list[Any]]:
        await asyncio.sleep(0)  # the other calls of this turn join
        batch += self._take()
        sent = self._merge(batch)
        answers: list[Any] = await pipelined(self._client, [one.call() for one in sent])
        return sent, answers

    async def _again(self, calls: Sequence[Call]) -> list[Any]:
        answers: list[Any] = await self._link.call(pipelined(self._client, calls))
        return answers

    def _settle(self, sent: list[_Sent], answers: list[Any]) -> None:
        for one, answer in zip(sent, answers, strict=True):
            if not one.merged() or isinstance(answer, BaseException):
                answer = [answer] * len(one.futures)
            for future, each in zip(one.futures, answer, strict=True):
                if isinstance(each, StoreUnavailable):
                    future.set_exception(each)
                elif isinstance(each, BaseException):
                    future.set_exception(self._link.refusal(each))
                else:
                    future.set_result(each)

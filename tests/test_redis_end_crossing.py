"""A hold's last try refused while the store's own claim of it crosses its end.

At risk past its deadline, a hold has one try left (the risk try, just after the
drop); when that try is refused too the hold ends ``Lost``. While the try is on
the wire the store keeps the hold leased to this worker. Should a claim of the
worker's own run in Redis meanwhile, it raises the hold's fence, and the end
that follows the refusal carries the older fence. When the end's answer comes
back before the claim's, the end was refused for the worker's own claim, and the
claim then handed the hold out again from its record of before the try: one more
reserve, a customer-visible unit taken for 8 minutes, before the hold ended
``Lost`` all the same.

The test drives that interleaving on a real redis-server with the fake server
and a FakeClock: its Redis client holds back the answer of a claim that handed
the hold out until the end was answered, and sends the end only after a claim
ran at the same instant.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from openticket_async import (
    BearerToken,
    HoldEvent,
    HoldPolicy,
    Lost,
    OpenTicketClient,
    ReservationManager,
    RetryPolicy,
)
from openticket_async._planning import drop_time
from openticket_async.stores.redis import RedisStore
from openticket_async.testing import FakeClock, FakeOpenTicket

Fake = FakeOpenTicket[FakeClock]
# one try per reserve call, no jitter: the hold's reserves come at known times
POLICY = HoldPolicy(renew_jitter=0, max_hold=None)
RETRY = RetryPolicy(attempts=1)
#: How long the risk try stays on the wire: until the scheduler's next poll.
ON_THE_WIRE = 0.5


class CrossingClaims(aioredis.Redis):
    """A real client that makes the store's own claim of a hold cross its end.

    Once ``armed``: a pipeline carrying the end (FORGET) is sent only after a
    claim ran in Redis at the same instant of the clock, and the answer of a
    claim that handed a hold out is held back until that end was answered. So
    the claim runs first in Redis, and its answer comes back last.
    """

    def __init__(self, url: str, clock: FakeClock) -> None:
        super().__init__(connection_pool=aioredis.ConnectionPool.from_url(url))
        self.clock = clock
        self.claim_sha = self.forget_sha = ""
        self.armed = False
        self.claimed_at: float | None = None
        self.claim_ran = asyncio.Event()
        self.end_answered = asyncio.Event()

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        answer = await super().evalsha(sha, numkeys, *keys_and_args)
        if sha == self.claim_sha:
            self.claimed_at = self.clock.now()
            self.claim_ran.set()
            if self.armed and len(answer) > 4:  # CLAIM's 4 values, then the holds
                await self.end_answered.wait()
        return answer

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return _Watched(self, transaction, shard_hint)

    async def before_end(self) -> None:
        """Wait until a claim ran at this instant."""
        while self.claimed_at != self.clock.now():
            self.claim_ran.clear()
            await self.claim_ran.wait()

    def ended(self) -> None:
        """The end was answered: hand out the claim's answer."""
        self.armed = False
        self.end_answered.set()


class _Watched(Pipeline):
    """A pipeline of :class:`CrossingClaims` that sends an armed end after the claim."""

    def __init__(self, owner: CrossingClaims, transaction: bool, shard_hint: str | None) -> None:
        super().__init__(owner.connection_pool, owner.response_callbacks, transaction, shard_hint)
        self.owner = owner

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        owner = self.owner
        ending = owner.armed and any(
            args[0] == "EVALSHA" and args[1] == owner.forget_sha for args, _ in self.command_stack
        )
        if ending:
            await owner.before_end()
        answers: list[Any] = await super().execute(raise_on_error)
        if ending:
            owner.ended()
        return answers


@pytest_asyncio.fixture
async def client(openticket_fake: Fake) -> AsyncIterator[OpenTicketClient]:
    async with OpenTicketClient(
        auth=BearerToken(openticket_fake.issue_token().access_token),
        hosts=openticket_fake.hosts,
        clock=openticket_fake.clock,
        retry=RETRY,
    ) as client:
        yield client


@pytest_asyncio.fixture
async def crossing(openticket_fake: Fake, redis_url: str) -> AsyncIterator[CrossingClaims]:
    redis = CrossingClaims(redis_url, openticket_fake.clock)
    yield redis
    await redis.aclose(close_connection_pool=True)


def reserve_times(fake: Fake) -> list[float]:
    """When the fake server was asked for a reserve, oldest first."""
    return [request.time for request in fake.requests if request.route == "reserve"]


@pytest.mark.redis
@pytest.mark.asyncio
async def test_a_last_try_refused_as_the_workers_own_claim_crosses_the_end_is_its_last_reserve(
    openticket_fake: Fake,
    client: OpenTicketClient,
    crossing: CrossingClaims,
    redis_prefix: str,
) -> None:
    fake, clock = openticket_fake, openticket_fake.clock
    shop = fake.add_shop()
    ticket = fake.add_ticket(shop, stock=1)  # the renewal finds it sold out: the hold's own
    store = RedisStore(crossing, prefix=redis_prefix, policy=POLICY)
    crossing.claim_sha = store._scripts["claim"].sha
    crossing.forget_sha = store._scripts["forget"].sha
    lost: list[HoldEvent] = []
    async with ReservationManager(client, policy=POLICY, store=store) as manager:
        manager.on(Lost, lost.append)
        [hold] = await manager.cart(shop.guid).add(ticket.guid)
        assert hold.reservation is not None
        risk_try = drop_time(hold.reservation, POLICY)
        # the server dropped the unit; another customer takes it before the risk try
        await clock.advance_to(risk_try - 1.0)
        async with OpenTicketClient(
            auth=BearerToken(fake.issue_token().access_token), hosts=fake.hosts, clock=clock,
            retry=RETRY,
        ) as rival:
            await rival.reserve_ticket(shop.guid, ticket.guid)
        taken = clock.now()
        fake.faults.delay("reserve", ON_THE_WIRE)  # the risk try's answer: at the next poll
        await clock.advance_to(risk_try)
        crossing.armed = True  # the risk try is on the wire
        await clock.advance(60.0)
        assert [event.hold for event in lost] == [hold]
    times = reserve_times(fake)
    times.remove(taken)  # the rival's
    assert [t for t in times if t > taken] == [risk_try]

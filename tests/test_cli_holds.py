"""``openticket holds`` against a real redis-server and two worker processes holding carts.

The fake OpenTicket server runs here on 127.0.0.1 with the system clock; the
workers (tests/redis_worker.py) are separate processes, each with its own
manager and RedisStore, so the view reads what real workers wrote. The
reservation TTL is long (60 s) so that no renewal replaces a reservation
between the view's read and the fake server's: what is compared is fixed.
A fleet split in shards is written by a store of the test's own.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from redis_processes import Worker
from rich.console import Console

from openticket_async import Hold, HoldPolicy, SystemClock
from openticket_async._hold import HoldState
from openticket_async.cli._holds import fleet_table
from openticket_async.stores.redis import RedisStore
from openticket_async.stores.redis._fleet import FleetHold, FleetSnapshot, fleet_snapshot
from openticket_async.stores.redis._keys import MAX_SHARDS
from openticket_async.testing import FakeOpenTicket

_F = TypeVar("_F", bound=Callable[..., Any])

CLI = [sys.executable, "-m", "openticket_async.cli", "holds"]
#: What the view says on stderr when no worker has recorded a shard count.
NO_RECORD = (
    "openticket holds: note: no shard count is recorded on prefix {prefix!r} (a worker records"
    " it at its first claim, and it expires after the store's retention): reading with"
    " shards=1, the store's default here; if the workers use another, give --shards N\n"
)
TTL = 60.0
POLICY = {"renew_before": 2.0, "warn_before": 3.0, "safety_margin": 0.3,
          "renew_jitter": 0.2, "max_hold": None}


def _marks(*marks: pytest.MarkDecorator) -> Callable[[_F], _F]:
    """One decorator applying ``marks``, for tests that share a stack of them."""

    def apply(test: _F) -> _F:
        for mark in reversed(marks):
            test = mark(test)
        return test

    return apply


#: The tests that start worker processes holding carts (``fleet``).
FLEET_TEST = _marks(
    pytest.mark.redis, pytest.mark.slow, pytest.mark.asyncio, pytest.mark.timeout(60)
)
#: The tests that read a fleet split in shards, written by a store of the test's own.
SHARDS_TEST = _marks(
    pytest.mark.redis, pytest.mark.realtime, pytest.mark.asyncio, pytest.mark.timeout(60)
)


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest_asyncio.fixture
async def fleet(
    redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[FakeOpenTicket[SystemClock], dict[str, dict[str, Any]]]]:
    """Two workers, two carts each of two holds; yields the server and the holds by id
    (with the cart, ticket, first reservation and the worker that made it)."""
    async with FakeOpenTicket(SystemClock(), reservation_ttl=TTL) as fake:
        shop = fake.add_shop()
        tickets = [fake.add_ticket(shop, stock=2).guid for _ in range(8)]
        base = {"mode": "holds", "redis": redis_url, "prefix": redis_prefix, "ttl": TTL,
                "policy": POLICY, "hosts": {"auth": fake.hosts.auth, "api": fake.hosts.api,
                                            "shop": fake.hosts.shop}}
        workers = [await Worker.start(name, {**base, "token": fake.issue_token().access_token})
                   for name in ("north", "south")]
        holds: dict[str, dict[str, Any]] = {}
        try:
            for worker in workers:
                await worker.expect(lambda r: r["ev"] == "ready")
            for number, worker in enumerate(workers * 2):
                cart = f"cart-{worker.name}-{number}"
                wanted = tickets[2 * number : 2 * number + 2]
                await worker.send({"cmd": "add", "shop": shop.guid, "cart": cart,
                                   "tickets": wanted})
                added = await worker.expect(
                    lambda r, c=cart: bool(r["ev"] == "added" and r["cart"] == c)  # type: ignore[misc]
                )
                for hold in added["holds"]:
                    holds[hold["id"]] = {**hold, "cart": cart, "worker": worker.name}
            yield fake, holds
        finally:
            for worker in workers:
                await worker.stop()


def server_holds(fake: FakeOpenTicket[SystemClock]) -> set[tuple[str, str]]:
    """(ticket, reservation) of every reservation the fake server holds live."""
    return {(record.ticket_guid, record.guid) for record in fake.live_reservations()}


@FLEET_TEST
async def test_json_lines_match_the_holds_at_the_fake_server(
    fleet: tuple[FakeOpenTicket[SystemClock], dict[str, dict[str, Any]]],
    redis_url: str, redis_prefix: str,
) -> None:
    fake, holds = fleet
    code, out, err = await run_cli("--redis", redis_url, "--prefix", redis_prefix, "--json")
    assert (code, err) == (0, "")
    lines = [json.loads(line) for line in out.splitlines()]
    assert {(r["ticket"], r["reservation"]) for r in lines} == server_holds(fake)
    assert {r["hold"]: (r["cart"], r["ticket"], r["reservation"]) for r in lines} == {
        hold_id: (h["cart"], h["ticket"], h["reservation"]) for hold_id, h in holds.items()
    }
    assert {(r["state"], r["renewals"], r["at_risk"]) for r in lines} == {("ACTIVE", 0, False)}
    assert all(0 < r["time_left"] <= TTL for r in lines)


@FLEET_TEST
async def test_each_hold_shows_the_worker_that_holds_it(
    fleet: tuple[FakeOpenTicket[SystemClock], dict[str, dict[str, Any]]],
    redis_url: str, redis_prefix: str,
) -> None:
    _fake, holds = fleet
    code, out, _err = await run_cli("--redis", redis_url, "--prefix", redis_prefix, "--json")
    assert code == 0
    owners: dict[str, set[str]] = {}
    for line in out.splitlines():
        record = json.loads(line)
        owners.setdefault(holds[record["hold"]]["worker"], set()).add(record["owner"])
    # each worker's holds carry one owner, and the two workers' owners differ
    assert sorted(len(names) for names in owners.values()) == [1, 1]
    assert owners["north"] != owners["south"]


@FLEET_TEST
async def test_the_tables_show_every_hold_at_the_fake_server(
    fleet: tuple[FakeOpenTicket[SystemClock], dict[str, dict[str, Any]]],
    redis_url: str, redis_prefix: str,
) -> None:
    fake, holds = fleet
    code, out, _err = await run_cli("--redis", redis_url, "--prefix", redis_prefix)
    assert code == 0
    head, *rows = out.splitlines()
    assert head.startswith(f"{len(holds)} hold(s) in 4 cart(s) on Redis ")
    shown = {(row.split()[3], row.split()[5]) for row in rows}  # ticket, reservation
    assert shown == server_holds(fake)
    store = RedisStore(redis_url, prefix=redis_prefix)
    try:
        snapshot = await fleet_snapshot(store)
    finally:
        await store.aclose()
    console = Console(record=True, width=200, color_system=None)
    console.print(fleet_table(snapshot, "fleet"))
    table = console.export_text()
    for hold in holds.values():
        assert hold["reservation"].split("-")[0] in table
        assert hold["cart"] in table
    assert table.count("ACTIVE") == len(holds)


def _hold(hold_id: str, state: HoldState, time_left: float | None) -> FleetHold:
    return FleetHold(hold_id=hold_id, cart_id="cart", shop_guid="shop", ticket_guid="ticket",
                     state=state, reservation_guid=None, time_left=time_left, renewals=0,
                     owner=None, lease_left=0.0, action="renew", due_in=0.0)


def test_at_risk_holds_come_first_then_by_time_left() -> None:
    holds = [_hold("calm-late", HoldState.ACTIVE, 300.0),
             _hold("risky", HoldState.AT_RISK, 200.0),
             _hold("calm-soon", HoldState.RENEWING, 20.0),
             _hold("dropped", HoldState.ACTIVE, -1.0)]
    snapshot = FleetSnapshot.of(0.0, holds)
    assert [hold.hold_id for hold in snapshot.holds] == [
        "dropped", "risky", "calm-soon", "calm-late"
    ]


@pytest.mark.redis
@pytest.mark.realtime
def test_watch_refreshes_until_ctrl_c_and_exits_130(redis_url: str, redis_prefix: str) -> None:
    process = subprocess.Popen(  # noqa: S603 (our own command)
        [*CLI, "--redis", redis_url, "--prefix", redis_prefix, "--watch"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    heads = [process.stdout.readline() for _ in range(2)]  # two refreshes of an empty fleet
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=20)
    assert [head.split(" on Redis")[0] for head in heads] == ["0 hold(s) in 0 cart(s)"] * 2
    # nothing on stderr but the note that no worker recorded a shard count, said once
    assert (process.returncode, err) == (130, NO_RECORD.format(prefix=redis_prefix))


@pytest.mark.realtime
def test_an_unreachable_redis_is_an_error_line_without_its_password() -> None:
    result = subprocess.run(  # noqa: S603 (our own command)
        [*CLI, "--redis", "redis://:hunter2-secret@127.0.0.1:1/0"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 1
    # the store's own outage warning comes first; no traceback
    *_warning, last = result.stderr.splitlines()
    assert last.startswith("openticket holds: error: cannot read the fleet: Redis at 127.0.0.1:1/0")
    assert "Traceback" not in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout


async def split_fleet(url: str, prefix: str, shards: int | None, *, claimed: bool
                      ) -> dict[str, str]:
    """A hold in each shard of a fleet of ``shards``; returns their carts by hold id.

    ``claimed``: the store then claims once (nothing is due yet), which records
    its shard count in Redis, as a worker's first poll does.
    """
    store = RedisStore(url, prefix=prefix, shards=shards)
    clock = SystemClock()
    store.bind(clock, HoldPolicy())
    carts: dict[int, str] = {}  # one cart in each shard
    while len(carts) < store.shards:
        cart = f"cart-{uuid.uuid4().hex[:8]}"
        carts.setdefault(store._keys.shard_of(cart), cart)
    saved = {}
    try:
        for cart in carts.values():
            hold = Hold(id=uuid.uuid4().hex, cart_id=cart, shop_guid="shop",
                        ticket_guid="ticket", reservation=None, created_at=time.monotonic())
            await store.save(hold, "renew", clock.wall().timestamp() + 60.0)
            saved[hold.id] = cart
        if claimed:
            assert await store.claim_due(clock.wall().timestamp(), 10) == []
    finally:
        await store.aclose()
    return saved


def shown(out: str) -> dict[str, str]:
    """The carts by hold id of the ``--json`` lines in ``out``."""
    return {record["hold"]: record["cart"] for record in map(json.loads, out.splitlines())}


@SHARDS_TEST
async def test_shards_shows_every_hold_of_a_fleet_split_in_three(
    redis_url: str, redis_prefix: str,
) -> None:
    saved = await split_fleet(redis_url, redis_prefix, 3, claimed=False)
    code, out, err = await run_cli("--redis", redis_url, "--prefix", redis_prefix,
                                   "--shards", "3", "--json")
    assert (code, err) == (0, "")
    assert shown(out) == saved


@SHARDS_TEST
async def test_without_shards_a_fleet_split_in_three_is_read_with_its_recorded_count(
    redis_url: str, redis_prefix: str,
) -> None:
    saved = await split_fleet(redis_url, redis_prefix, 3, claimed=True)
    code, out, err = await run_cli("--redis", redis_url, "--prefix", redis_prefix, "--json")
    assert (code, err) == (0, "")
    assert shown(out) == saved


@SHARDS_TEST
async def test_a_shards_other_than_the_recorded_count_is_a_usage_error_naming_both(
    redis_url: str, redis_prefix: str,
) -> None:
    await split_fleet(redis_url, redis_prefix, 3, claimed=True)
    code, out, err = await run_cli("--redis", redis_url, "--prefix", redis_prefix,
                                   "--shards", "1")
    assert (code, out) == (2, "")
    assert err == (f"openticket holds: error: --shards 1 does not match the fleet: its workers"
                   f" on prefix {redis_prefix!r} recorded shards=3\n")


@SHARDS_TEST
async def test_a_one_shard_fleets_untagged_record_refuses_another_shards(
    redis_url: str, redis_prefix: str,
) -> None:
    await split_fleet(redis_url, redis_prefix, None, claimed=True)  # recorded as "P shards"
    code, _out, err = await run_cli("--redis", redis_url, "--prefix", redis_prefix,
                                    "--shards", "3")
    assert code == 2
    assert err.endswith("--shards 3 does not match the fleet: its workers on prefix "
                        f"{redis_prefix!r} recorded shards=1\n")


@SHARDS_TEST
async def test_two_recorded_counts_without_shards_are_a_usage_error_naming_both(
    redis_url: str, redis_prefix: str,
) -> None:
    # on a single Redis a one-shard store records untagged, a sharded one tagged: both stay
    await split_fleet(redis_url, redis_prefix, None, claimed=True)
    await split_fleet(redis_url, redis_prefix, 3, claimed=True)
    code, out, err = await run_cli("--redis", redis_url, "--prefix", redis_prefix)
    assert (code, out) == (2, "")
    assert err == (f"openticket holds: error: the workers on prefix {redis_prefix!r} recorded"
                   " shards=1 and shards=3: give --shards N to choose which of them to show\n")


@SHARDS_TEST
async def test_with_no_recorded_count_the_default_is_used_and_said_once_on_stderr(
    redis_url: str, redis_prefix: str,
) -> None:
    saved = await split_fleet(redis_url, redis_prefix, None, claimed=False)
    code, out, err = await run_cli("--redis", redis_url, "--prefix", redis_prefix, "--json")
    assert code == 0
    assert shown(out) == saved  # every stdout line is a hold's JSON, the note is not one
    assert err == NO_RECORD.format(prefix=redis_prefix)


@pytest.mark.redis
@pytest.mark.realtime
@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_on_a_cluster_a_shards_other_than_the_recorded_count_is_refused(
    redis_cluster_url: str, redis_prefix: str,
) -> None:
    # the count is recorded tagged, under "P{0}shards", in the slot of shard 0
    await split_fleet(redis_cluster_url, redis_prefix, 5, claimed=True)
    code, out, err = await run_cli("--redis", redis_cluster_url, "--prefix", redis_prefix,
                                   "--shards", "16")
    assert (code, out) == (2, "")
    assert err.endswith("--shards 16 does not match the fleet: its workers on prefix "
                        f"{redis_prefix!r} recorded shards=5\n")


@pytest.mark.realtime
@pytest.mark.parametrize("shards", [0, MAX_SHARDS + 1])
def test_a_shard_count_out_of_range_is_a_usage_error_before_any_connection(
    shards: int,
) -> None:
    result = subprocess.run(  # noqa: S603 (our own command)
        [*CLI, "--redis", "redis://127.0.0.1:1/0", "--shards", str(shards)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    # one line, and no outage warning: nothing tried to reach port 1
    assert (result.returncode, result.stdout, result.stderr) == (2, "", (
        "openticket holds: error: bad --redis, --prefix or --shards: shards must be an int"
        f" from 1 to {MAX_SHARDS}, got {shards}\n"
    ))

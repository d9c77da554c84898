"""``openticket reserve`` as a subprocess against the fake server in this process.

The fake server runs on 127.0.0.1 on the real clock; hosts reach the command
through the environment (or its options). Every test also checks that the token
never shows up in what the command prints.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import pytest_asyncio

from openticket_async import SystemClock
from openticket_async.testing import FakeOpenTicket, FakeTicket

# every test runs the command in a subprocess against a fake on the real clock
pytestmark = pytest.mark.realtime

CLI = [sys.executable, "-m", "openticket_async.cli"]
STOCK = 4


@attrs.frozen
class Shop:
    fake: FakeOpenTicket[SystemClock]
    shop: str
    ticket: FakeTicket
    token: str
    refresh_token: str

    def env(self, **extra: str) -> dict[str, str]:
        base = self.fake.url
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPENTICKET")}
        env.update(
            OPENTICKET_AUTH_URL=f"{base}/auth",
            OPENTICKET_API_URL=f"{base}/api",
            OPENTICKET_SHOP_URL=f"{base}/shop",
        )
        env.update(extra)
        return env

    def args(self, *more: str) -> list[str]:
        return ["reserve", "--shop", self.shop, "--ticket", self.ticket.guid, *more]


@attrs.frozen
class Run:
    code: int
    stdout: str
    stderr: str

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stdout.splitlines()]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [record for record in self.records() if record["type"] == kind]


@pytest_asyncio.fixture
async def shop() -> AsyncIterator[Shop]:
    async with FakeOpenTicket(SystemClock()) as fake:
        seeded = fake.add_shop()
        ticket = fake.add_ticket(seeded, stock=STOCK)
        tokens = fake.issue_token()
        assert tokens.refresh_token is not None
        yield Shop(fake, seeded.guid, ticket, tokens.access_token, tokens.refresh_token)


async def openticket(args: list[str], env: dict[str, str]) -> Run:
    # asynchronous on purpose: the fake server answering it runs on this event loop
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=20)
    assert process.returncode is not None
    return Run(process.returncode, stdout.decode(), stderr.decode())


def assert_one_line_error(run: Run, code: int, text: str) -> None:
    assert run.code == code, run.stderr
    assert run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("openticket reserve: error: ")
    assert text in run.stderr
    assert "Traceback" not in run.stderr


def assert_no_secret(run: Run, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in run.stdout
        assert secret not in run.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.mark.asyncio
async def test_reserve_holds_the_tickets_then_releases_them_with_a_summary(shop: Shop) -> None:
    run = await openticket(
        shop.args("--quantity", "2", "--hold-for", "1s", "--json"),
        shop.env(OPENTICKET_TOKEN=shop.token),
    )
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    reserved = run.of_type("reserved")
    assert [r["ticket"] for r in reserved] == [
        f"ticket {shop.ticket.guid[:8]} #1",
        f"ticket {shop.ticket.guid[:8]} #2",
    ]
    # the server holds exactly the reservations the command reported
    live = {r.guid for r in shop.fake.live_reservations(shop.ticket)}
    assert live == {r["reservation"] for r in reserved}
    assert {r["hold"] for r in run.of_type("Released")} == {r["hold"] for r in reserved}
    (summary,) = run.of_type("summary")
    assert (summary["holds"], summary["kept"], summary["released"], summary["lost"]) == (2, 0, 2, 0)
    assert summary["interrupted"] is False
    assert summary["real_seconds"] >= 1.0
    assert_no_secret(run, shop.token)


@pytest.mark.asyncio
async def test_reserve_prints_plain_lines_and_never_the_token_even_verbose(shop: Shop) -> None:
    args = ["-v", *shop.args("--hold-for", "0.5s")]
    run = await openticket(args, shop.env(OPENTICKET_TOKEN=shop.token))
    assert run.code == 0, run.stderr
    assert "reserved ticket" in run.stdout
    assert "Summary: 0 of 1 hold(s) kept" in run.stdout
    assert "1 released (the unit stays taken at OpenTicket until its drop)" in run.stdout
    assert "GET /shop/" in run.stderr  # -v shows the library's request log...
    assert_no_secret(run, shop.token)  # ...with the Authorization header masked


@pytest.mark.asyncio
async def test_reserve_hosts_can_come_from_options(shop: Shop) -> None:
    base = shop.fake.url
    env = {k: v for k, v in shop.env(OPENTICKET_TOKEN=shop.token).items() if "_URL" not in k}
    hosts = ["--auth-host", f"{base}/auth", "--api-host", f"{base}/api", "--shop-host"]
    run = await openticket(shop.args(*hosts, f"{base}/shop", "--hold-for", "0.2s"), env)
    assert run.code == 0, run.stderr
    assert len(shop.fake.live_reservations(shop.ticket)) == 1


@pytest.mark.asyncio
async def test_reserve_without_credentials_is_a_usage_error(shop: Shop) -> None:
    run = await openticket(shop.args(), shop.env())
    assert_one_line_error(run, 2, "no credentials: set OPENTICKET_TOKEN")
    assert run.stdout == ""
    assert shop.fake.requests == []


@pytest.mark.asyncio
async def test_reserve_with_a_bad_guid_is_a_usage_error(shop: Shop) -> None:
    env = shop.env(OPENTICKET_TOKEN=shop.token)
    run = await openticket(["reserve", "--shop", shop.shop, "--ticket", "12345/../x"], env)
    assert_one_line_error(run, 2, "argument --ticket: not a GUID: '12345/../x'")
    assert shop.fake.requests == []
    assert_no_secret(run, shop.token)


@pytest.mark.asyncio
async def test_reserve_against_an_unreachable_host_fails_in_one_line(shop: Shop) -> None:
    closed = f"http://127.0.0.1:{free_port()}/shop"
    run = await openticket(
        shop.args("--shop-host", closed, "--hold-for", "1s"),
        shop.env(OPENTICKET_TOKEN=shop.token),
    )
    assert_one_line_error(run, 1, "cannot reach the OpenTicket API: cannot connect")
    assert_no_secret(run, shop.token)


@pytest.mark.asyncio
async def test_reserve_with_a_refused_token_fails_without_showing_it(shop: Shop) -> None:
    wrong = "at_this-token-is-not-known"
    run = await openticket(shop.args("--hold-for", "1s"), shop.env(OPENTICKET_TOKEN=wrong))
    assert_one_line_error(run, 1, "the credentials were refused")
    assert "HTTP 401" in run.stderr
    assert_no_secret(run, wrong)


@pytest.mark.asyncio
async def test_reserve_of_a_sold_out_ticket_fails_and_keeps_nothing(shop: Shop) -> None:
    run = await openticket(
        shop.args("--quantity", str(STOCK + 1), "--hold-for", "1s"),
        shop.env(OPENTICKET_TOKEN=shop.token),
    )
    assert_one_line_error(run, 1, "the ticket is not available")
    assert "HTTP 409" in run.stderr


@pytest.mark.asyncio
async def test_reserve_with_oauth_saves_the_new_tokens_and_reuses_them(
    shop: Shop, tmp_path: Path
) -> None:
    token_file = tmp_path / "tokens.json"
    oauth = {
        "OPENTICKET_CLIENT_ID": "test-client",
        "OPENTICKET_CLIENT_SECRET": "test-secret",
        "OPENTICKET_TOKEN_FILE": str(token_file),
    }
    first = await openticket(
        shop.args("--hold-for", "0.2s"),
        shop.env(OPENTICKET_REFRESH_TOKEN=shop.refresh_token, **oauth),
    )
    assert first.code == 0, first.stderr
    saved = json.loads(token_file.read_text())
    assert saved["refresh_token"] != shop.refresh_token  # rotated, and kept
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # the next run needs no refresh token in the environment: the file has one
    second = await openticket(shop.args("--hold-for", "0.2s"), shop.env(**oauth))
    assert second.code == 0, second.stderr
    assert shop.fake.refresh_count == 1
    for run in (first, second):
        assert_no_secret(
            run, shop.refresh_token, saved["refresh_token"], saved["access_token"], "test-secret"
        )


@pytest.mark.asyncio
async def test_reserve_with_a_token_file_it_cannot_save_refuses_before_spending_the_refresh_token(
    shop: Shop, tmp_path: Path
) -> None:
    env = shop.env(
        OPENTICKET_CLIENT_ID="test-client",
        OPENTICKET_CLIENT_SECRET="test-secret",
        OPENTICKET_REFRESH_TOKEN=shop.refresh_token,
        OPENTICKET_TOKEN_FILE=str(tmp_path / "no-such-directory" / "tokens.json"),
    )
    run = await openticket(shop.args("--hold-for", "0.2s"), env)
    assert_one_line_error(run, 2, "OPENTICKET_TOKEN_FILE: cannot save tokens in")
    assert shop.fake.requests == []
    assert shop.fake.token_grants == []  # the single-use refresh token is still unspent
    assert_no_secret(run, shop.refresh_token, "test-secret")


@pytest.mark.asyncio
async def test_reserve_with_incomplete_oauth_settings_names_what_is_missing(shop: Shop) -> None:
    run = await openticket(shop.args(), shop.env(OPENTICKET_CLIENT_ID="test-client"))
    assert_one_line_error(run, 2, "OPENTICKET_CLIENT_SECRET, OPENTICKET_REFRESH_TOKEN not set")


@pytest.mark.asyncio
async def test_reserve_stops_on_sigint_releases_and_exits_130(shop: Shop) -> None:
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *shop.args("--quantity", "2", "--json"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=shop.env(OPENTICKET_TOKEN=shop.token),
    )
    assert process.stdout is not None
    try:
        seen: list[dict[str, Any]] = []
        while sum(r["type"] == "reserved" for r in seen) < 2:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=10)
            assert line, "reserve ended early"
            seen.append(json.loads(line))
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 130  # like the demo: 128 + SIGINT
    run = Run(process.returncode, stdout.decode(), stderr.decode())
    assert run.stderr == ""
    assert len(run.of_type("Released")) == 2
    (summary,) = run.of_type("summary")
    assert summary["interrupted"] is True
    assert (summary["kept"], summary["released"]) == (0, 2)

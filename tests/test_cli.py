"""The ``openticket`` command: parsing, records and views, and ``openticket demo`` end to end.

The demo runs as a real subprocess at 600x (8 minutes in 0.8 s), so these tests see
exactly what a newcomer sees, in its ``--json`` form.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from rich.console import Console

from openticket_async import HoldPolicy, Order, Reservation, TicketUnavailable
from openticket_async._events import Released, RenewalFailed, Renewed
from openticket_async._hold import Hold, HoldState
from openticket_async.cli import main, parse_duration
from openticket_async.cli._live import LiveOutput
from openticket_async.cli._output import RunView, describe
from openticket_async.cli._run import CommandError, make_output
from openticket_async.testing import FakeClock

CLI = [sys.executable, "-m", "openticket_async.cli"]
CYCLES = 2
TICKETS = 3
SHOP = "11111111-1111-1111-1111-111111111111"
TICKET = "22222222-2222-2222-2222-222222222222"

Record = dict[str, Any]


def clean_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith("OPENTICKET")}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own command)
        [*CLI, *args], capture_output=True, text=True, timeout=25, env=clean_env(), check=False
    )


def parse(stdout: str) -> list[Record]:
    return [json.loads(line) for line in stdout.splitlines()]


def of_type(records: list[Record], kind: str, hold: str | None = None) -> list[Record]:
    return [r for r in records if r["type"] == kind and (hold is None or r.get("hold") == hold)]


@pytest.fixture(scope="module")
def demo_run() -> tuple[subprocess.CompletedProcess[str], list[Record]]:
    done = run_cli("demo", "--json", "--speed", "600", "--cycles", str(CYCLES))
    return done, parse(done.stdout)


# -- the demo, end to end -----------------------------------------------------------


@pytest.mark.realtime
def test_demo_exits_zero_with_nothing_on_stderr(
    demo_run: tuple[subprocess.CompletedProcess[str], list[Record]],
) -> None:
    done, records = demo_run
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert records[0]["type"] == "start"
    assert records[-1]["type"] == "summary"


@pytest.mark.realtime
def test_demo_renews_every_hold_once_per_cycle_before_its_drop(
    demo_run: tuple[subprocess.CompletedProcess[str], list[Record]],
) -> None:
    _, records = demo_run
    reserved = of_type(records, "reserved")
    assert len(reserved) == TICKETS
    for first in reserved:
        renewals = of_type(records, "Renewed", first["hold"])
        assert len(renewals) == CYCLES, first["ticket"]
        failed_before = {
            r["virtual_time"] for r in of_type(records, "RenewalFailed", first["hold"])
        }
        current = first["reservation"]
        for renewal in renewals:
            assert renewal["old_reservation"] == current  # each renewal replaces the last one
            assert renewal["time_left"] > 0
            if not any(t < renewal["virtual_time"] for t in failed_before):
                assert renewal["old_time_left"] > 0, "renewed only after the drop"
            current = renewal["new_reservation"]
    summary = records[-1]
    assert summary["renewals"] == TICKETS * CYCLES
    assert summary["lost"] == 0


@pytest.mark.realtime
def test_demo_shows_a_hold_at_risk_and_its_retry_after_the_drop(
    demo_run: tuple[subprocess.CompletedProcess[str], list[Record]],
) -> None:
    _, records = demo_run
    kinds = [r["type"] for r in records]
    failures = of_type(records, "RenewalFailed")
    assert [f["ticket"] for f in failures] == ["Front row"]
    failure = failures[0]
    assert failure["state"] == "AT_RISK"
    assert failure["error"] == "TicketUnavailable"
    assert failure["status"] == 409
    assert failure["will_retry"] is True
    assert kinds.index("rival") < records.index(failure)
    retry = of_type(records, "Renewed", failure["hold"])[0]
    assert retry["virtual_time"] > failure["virtual_time"]
    assert retry["old_time_left"] < 0  # it came back just after the old reservation dropped
    assert retry["state"] == "ACTIVE"
    assert records[-1]["at_risk"] == 1
    assert records[-1]["recovered"] == 1


@pytest.mark.realtime
def test_demo_checks_out_every_hold_into_one_order(
    demo_run: tuple[subprocess.CompletedProcess[str], list[Record]],
) -> None:
    _, records = demo_run
    (order,) = of_type(records, "order")
    checked_out = of_type(records, "CheckedOut")
    assert len(checked_out) == TICKETS
    assert {r["order"] for r in checked_out} == {order["guid"]}
    latest = {r["hold"]: r["new_reservation"] for r in of_type(records, "Renewed")}
    assert sorted(line["reservation"] for line in order["tickets"]) == sorted(latest.values())
    assert records[-1]["order"] == order["guid"]
    assert records[-1]["checked_out"] == TICKETS
    assert records[-1]["interrupted"] is False


@pytest.mark.realtime
def test_demo_prints_plain_lines_when_stdout_is_not_a_terminal() -> None:
    done = run_cli("demo", "--speed", "600", "--cycles", "1", "--tickets", "2")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert not any(line.startswith("{") for line in lines)
    text = done.stdout
    assert "renewal failed for Front row: TicketUnavailable (HTTP 409); AT_RISK" in text
    assert "renewed Balcony" in text
    assert "Summary: 2 of 2 hold(s) kept" in text
    assert "\x1b[" not in text  # no terminal control codes in a pipe


def _read_until(process: subprocess.Popen[str], kind: str, count: int) -> list[Record]:
    assert process.stdout is not None
    seen: list[Record] = []
    while len(of_type(seen, kind)) < count:
        line = process.stdout.readline()
        assert line, "the demo ended early"
        seen.append(json.loads(line))
    return seen


@pytest.mark.realtime
def test_demo_shuts_down_cleanly_on_sigint() -> None:
    process = subprocess.Popen(  # noqa: S603 (our own command)
        [*CLI, "demo", "--json"],  # default speed: it would run for ~25 s
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    try:
        before = _read_until(process, "reserved", TICKETS)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    after = parse(stdout)
    assert process.returncode == 130
    assert stderr == ""  # no traceback, no warning about a task left running
    holds = {r["hold"] for r in of_type(before, "reserved")}
    assert {r["hold"] for r in of_type(after, "Released")} == holds
    summary = after[-1]
    assert summary["type"] == "summary"
    assert summary["interrupted"] is True
    assert summary["released"] == TICKETS
    assert summary["kept"] == 0  # released holds are not kept: they end at their drop
    assert summary["order"] is None


# -- parsing ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("20m", 1200.0), ("1h", 3600.0), ("1h30m", 5400.0),
     ("1.5m", 90.0), (" 2S ", 2.0)],
)  # fmt: skip
def test_parse_duration_reads_seconds_minutes_and_hours(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "-5", "5x", "m", "1h-2m", "nan", "inf", "0s"])
def test_parse_duration_refuses_what_is_not_a_positive_duration(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


@pytest.mark.parametrize("text", ["inf", "1e400", "nan"])
def test_parse_duration_says_an_endless_duration_is_not_finite(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="must be a finite number"):
        parse_duration(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--speed", "0"],
        ["demo", "--speed", "601"],
        ["demo", "--tickets", "13"],
        ["demo", "--cycles", "x"],
        ["reserve", "--shop", "not-a-guid", "--ticket", TICKET],
        ["reserve", "--shop", SHOP, "--ticket", TICKET, "--hold-for", "soon"],
        ["reserve", "--shop", SHOP],
        ["frobnicate"],
    ],
)
def test_usage_errors_are_one_line_and_exit_two(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("openticket")
    assert "error:" in err


@pytest.mark.parametrize("argv", [["--help"], ["reserve", "--help"]])
def test_help_says_openticket_cannot_release_a_reservation_early(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal width
    assert "OpenTicket cannot release a reservation early" in text
    assert "stays taken until its 8-minute drop" in text
    assert "a second `openticket reserve` run" in text
    assert "sold_out" in text


# -- records and views -----------------------------------------------------------------


def make_reservation(clock: FakeClock, guid: str, left: float, margin: float) -> Reservation:
    now = clock.wall()
    return Reservation(
        guid=guid,
        shop_guid=SHOP,
        ticket_guid=TICKET,
        event_date_guid=None,
        products=(),
        reserved_at=now,
        expires_at=now + timedelta(seconds=left + margin),
        deadline=clock.now() + left + margin,
    )


@pytest.fixture
def view() -> RunView:
    return RunView(FakeClock(), HoldPolicy(safety_margin=2.0), 480.0)


def make_hold(view: RunView, hold_id: str, reservation: Reservation) -> Hold:
    return Hold(
        id=hold_id,
        cart_id="cart",
        shop_guid=SHOP,
        ticket_guid=TICKET,
        reservation=reservation,
        created_at=view.clock.now(),
    )


def test_records_tell_a_renewal_before_the_drop_from_a_recovery_after_it(view: RunView) -> None:
    clock = view.clock
    assert isinstance(clock, FakeClock)
    old = make_reservation(clock, "aaaaaaaa-0000-0000-0000-000000000000", 50.0, 2.0)
    hold = make_hold(view, "h1", old)
    (reserved,) = view.track([hold], "Front row")
    assert reserved["type"] == "reserved"
    assert reserved["time_left"] == 50.0

    error = TicketUnavailable("sold_out", status=409, method="GET", path="/shop/x")
    hold.state = HoldState.AT_RISK
    failed = view.hold_record(RenewalFailed(hold, 50.0, 0.0, error=error, will_retry=True))
    assert (failed["state"], failed["error"], failed["status"]) == (
        "AT_RISK",
        "TicketUnavailable",
        409,
    )

    new = make_reservation(clock, "bbbbbbbb-0000-0000-0000-000000000000", 470.0, 2.0)
    hold.reservation, hold.state, hold.renewals = new, HoldState.ACTIVE, 1
    renewed = view.hold_record(Renewed(hold, 470.0, 0.0, old=old, new=new))
    assert renewed["old_time_left"] == 50.0
    assert "0:50 before the drop" in describe(renewed)

    summary = view.summary_record(interrupted=False)
    assert (summary["renewals"], summary["at_risk"], summary["recovered"]) == (1, 1, 1)
    assert summary["kept"] == 1


def test_summary_tells_released_holds_from_kept_ones(view: RunView) -> None:
    clock = view.clock
    assert isinstance(clock, FakeClock)
    kept = make_hold(
        view, "h1", make_reservation(clock, "aaaaaaaa-1111-0000-0000-000000000000", 300.0, 2.0)
    )
    released = make_hold(
        view, "h2", make_reservation(clock, "bbbbbbbb-2222-0000-0000-000000000000", 300.0, 2.0)
    )
    view.track([kept], "Balcony")
    view.track([released], "Front row")
    released.state = HoldState.RELEASED
    view.hold_record(Released(released, 300.0, 0.0))

    summary = view.summary_record(interrupted=False)
    assert (summary["holds"], summary["kept"], summary["released"]) == (2, 1, 1)
    text = describe(summary)
    assert text.startswith("Summary: 1 of 2 hold(s) kept,")
    assert "\n  1 released (the unit stays taken at OpenTicket until its drop)\n" in text


def test_summary_names_no_released_hold_when_there_is_none(view: RunView) -> None:
    clock = view.clock
    assert isinstance(clock, FakeClock)
    hold = make_hold(
        view, "h1", make_reservation(clock, "aaaaaaaa-1111-0000-0000-000000000000", 300.0, 2.0)
    )
    view.track([hold], "Balcony")
    assert "released" not in describe(view.summary_record(interrupted=False))


def test_live_view_shows_each_hold_with_its_time_left_and_state(view: RunView) -> None:
    clock = view.clock
    assert isinstance(clock, FakeClock)
    calm = make_hold(
        view, "h1", make_reservation(clock, "cccccccc-1111-0000-0000-000000000000", 300.0, 2.0)
    )
    risky = make_hold(
        view, "h2", make_reservation(clock, "dddddddd-2222-0000-0000-000000000000", 20.0, 2.0)
    )
    risky.state = HoldState.AT_RISK
    view.track([calm], "Balcony")
    view.track([risky], "Front row")
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100, height=40, color_system=None)
    output = LiveOutput(view, "demo", console=console)
    output.emit({"type": "rival", "virtual_time": 1.0, "message": "a rival buyer came"})
    output.emit(view.summary_record(interrupted=True))
    text = screen.getvalue()
    assert "Balcony" in text
    assert "cccccccc" in text
    assert "5:00" in text
    assert "AT_RISK" in text
    assert "0:20" in text
    assert "a rival buyer came" in text
    assert "Interrupted. Summary: 2 of 2 hold(s) kept" in text.rstrip().splitlines()[-2]


def test_live_view_without_rich_is_a_one_line_hint(
    view: RunView, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    for name in [name for name in sys.modules if name == "rich" or name.startswith("rich.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "openticket_async.cli._live")
    with pytest.raises(CommandError) as error:
        make_output(False, view, "demo")
    assert "pip install 'openticket-async[cli]'" in str(error.value)
    assert "\n" not in str(error.value)
    assert make_output(True, view, "demo").__class__.__name__ == "JsonOutput"


def test_order_record_lists_the_tickets_of_the_order(view: RunView) -> None:
    order = Order(guid="eeeeeeee-0000-0000-0000-000000000000", status="pending", currency="EUR")
    record = view.order_record(order)
    assert (record["type"], record["guid"], record["tickets"]) == ("order", order.guid, [])
    assert view.summary_record(interrupted=False)["order"] == order.guid


@pytest.mark.asyncio
async def test_run_view_stamps_records_with_clock_time_since_the_start(view: RunView) -> None:
    clock = view.clock
    assert isinstance(clock, FakeClock)
    await clock.advance(75.5)
    record = view.note("rival", message="a rival buyer came")
    assert record["virtual_time"] == 75.5
    assert describe(record) == "[  1:15] a rival buyer came"

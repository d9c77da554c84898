"""The live terminal view of the ``openticket`` command (needs rich: the ``[cli]`` extra).

A table of the holds (ticket, current reservation, time left as a bar,
renewals, state) over the latest lines of the event log, redrawn a few times
a second. Importing this module raises ImportError when rich is missing; the
command turns that into a one-line hint.
"""

from __future__ import annotations

from collections import deque

import anyio
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .._hold import HoldState
from ._output import Record, RunView, clock_text, describe, short

__all__ = ["LiveOutput"]

#: How many event lines stay visible under the table.
LOG_LINES = 10
#: Real seconds between redraws: smooth enough for a countdown bar.
REDRAW_EVERY = 0.25
BAR_WIDTH = 16
#: Lines of the view besides the hold rows and the log lines.
TABLE_CHROME = 9
MIN_LOG_LINES = 3

_STATE_STYLES = {
    HoldState.ACTIVE: "green",
    HoldState.RENEWING: "cyan",
    HoldState.AT_RISK: "bold yellow",
    HoldState.LOST: "bold red",
    HoldState.EXPIRED: "red",
    HoldState.RELEASED: "dim",
    HoldState.ORDERED: "bold blue",
}


class LiveOutput:
    """A rich Live table of the holds plus the event log; the summary prints below it."""

    def __init__(self, view: RunView, title: str, console: Console | None = None) -> None:
        """Show ``view`` under ``title`` on ``console`` (stdout by default)."""
        self._view = view
        self._title = title
        self._console = console or Console()
        self._log: deque[str] = deque(maxlen=LOG_LINES)
        self._live = Live(
            self.render(),
            console=self._console,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()

    def emit(self, record: Record) -> None:
        """Add ``record`` to the log; the summary is printed below the table."""
        if record["type"] == "summary":
            self.close()
            self._console.print(describe(record), highlight=False)
            return
        # no redraw here: emit runs inside the manager's event delivery, which
        # must stay quick; the next periodic redraw shows the line
        self._log.append(describe(record))

    async def animate(self) -> None:
        """Redraw until cancelled, so the time-left bars count down.

        The table is built here, on the event loop (it reads the holds), and
        drawn on a worker thread: drawing takes milliseconds per row, and on the
        loop that would make the manager's timers late.
        """
        while True:
            await anyio.to_thread.run_sync(self._draw, self.render())
            await anyio.sleep(REDRAW_EVERY)

    def close(self) -> None:
        """Draw the final state and stop redrawing."""
        if self._live.is_started:
            self._draw(self.render())
            self._live.stop()

    def _draw(self, renderable: RenderableType) -> None:
        if self._live.is_started:
            self._live.update(renderable, refresh=True)

    def render(self) -> RenderableType:
        """The table of holds over the event log."""
        view = self._view
        table = Table(
            title=f"{self._title}  ·  clock {clock_text(view.virtual_time())}",
            expand=True,
        )
        table.add_column("Ticket", no_wrap=True, overflow="ellipsis", max_width=24)
        table.add_column("Reservation", no_wrap=True)
        table.add_column("Time left", no_wrap=True, min_width=BAR_WIDTH + 6)
        table.add_column("Renewals", justify="right", no_wrap=True)
        table.add_column("State", no_wrap=True)
        for hold in view.holds:
            guid = None if hold.reservation is None else hold.reservation.guid
            table.add_row(
                view.label(hold),
                short(guid),
                self._time_left(view.time_left(hold), hold.state),
                str(hold.renewals),
                Text(hold.state.name, style=_STATE_STYLES[hold.state]),
            )
        # as many log lines as fit under the table (its rows plus title, header, rules)
        room = self._console.size.height - len(view.holds) - TABLE_CHROME
        lines = list(self._log)[-max(room, MIN_LOG_LINES) :]
        log = Text("\n".join(lines) or "waiting for events...", no_wrap=True, overflow="ellipsis")
        return Group(table, Panel(log, title="events", title_align="left"))

    def _time_left(self, left: float | None, state: HoldState) -> Text:
        if left is None or state in (HoldState.RELEASED, HoldState.ORDERED):
            return Text("-")
        if left <= 0:
            return Text("dropped", style="yellow" if state is HoldState.AT_RISK else "red")
        # a bar of text, not rich's ProgressBar: a nested renderable per row
        # makes a redraw several times slower
        ttl = self._view.ttl
        filled = round(BAR_WIDTH * min(left / ttl, 1.0)) if ttl > 0 else 0
        style = "yellow" if state is HoldState.AT_RISK or left < ttl / 8 else "green"
        bar = Text("━" * filled, style=style)
        bar.append("─" * (BAR_WIDTH - filled), style="grey42")
        bar.append(f" {clock_text(left):>5}", style="bold" if left < ttl / 8 else "")
        return bar

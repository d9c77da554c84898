"""How a command of the ``openticket`` CLI runs: exit codes, errors, Ctrl-C, output choice.

A command is ``async def command(args, interrupt) -> exit code``. It opens its
resources (server, client, manager), then does its work inside
``with interrupt.scope:``, so that Ctrl-C (SIGINT) or SIGTERM cancels the work
while closing the resources, and reporting on them, still happens. A run that a
signal stopped exits ``128 + N`` (130 for Ctrl-C) whichever command it was: the
shell's convention, so a script can tell "done" from "stopped".
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskStatus

from .._clock import Clock
from ._output import JsonOutput, Output, PlainOutput, RunView

__all__ = [
    "FAILURE",
    "INTERRUPTED",
    "OK",
    "STOPPED_BY_SIGNAL",
    "USAGE",
    "Command",
    "CommandError",
    "Interrupt",
    "animated",
    "make_output",
    "run_command",
    "wait_until",
]

#: Exit codes; a run stopped by signal N exits ``STOPPED_BY_SIGNAL + N`` (130 for Ctrl-C).
OK, FAILURE, USAGE, STOPPED_BY_SIGNAL = 0, 1, 2, 128
INTERRUPTED = STOPPED_BY_SIGNAL + signal.SIGINT


class CommandError(Exception):
    """A failure the command reports as one line on stderr, with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = FAILURE) -> None:
        """Carry ``message`` (shown as is) and the process exit code."""
        super().__init__(message)
        self.exit_code = exit_code


class Interrupt:
    """Ctrl-C (SIGINT) or SIGTERM cancels :attr:`scope`: the run's work, not its cleanup.

    Commands wrap their work in ``with interrupt.scope:`` inside their resources,
    so closing the cart, the manager, the client and the fake server still runs
    (and reports) after a signal.
    """

    def __init__(self) -> None:
        """No signal received yet."""
        self.scope = anyio.CancelScope()
        self.signal: int | None = None

    @property
    def received(self) -> bool:
        """Whether a signal stopped the run."""
        return self.signal is not None

    async def watch(self, *, task_status: TaskStatus[None]) -> None:
        """Cancel :attr:`scope` on the first SIGINT or SIGTERM; ignore later ones."""
        try:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                task_status.started()
                async for signum in signals:
                    if self.signal is None:
                        self.signal = signum
                        self.scope.cancel()
        except NotImplementedError:
            # no loop signal handlers here (Windows): Ctrl-C arrives as
            # KeyboardInterrupt and main() reports it
            task_status.started()


def make_output(json_lines: bool, view: RunView, title: str) -> Output:
    """JSON lines, plain lines (stdout not a terminal) or the live table.

    Raises CommandError when the live table is due but rich is missing.
    """
    if json_lines:
        return JsonOutput()
    if not sys.stdout.isatty():
        return PlainOutput()
    try:
        from ._live import LiveOutput  # rich is optional: imported only for the live view
    except ImportError as exc:
        if not (exc.name or "").startswith("rich"):
            raise
        raise CommandError(
            "the live view needs rich: pip install 'openticket-async[cli]' (or use --json)"
        ) from None
    return LiveOutput(view, title)


@asynccontextmanager
async def animated(output: Output) -> AsyncIterator[None]:
    """Keep ``output`` redrawing while the block runs; close it afterwards."""
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(output.animate)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
    finally:
        output.close()


Command = Callable[[argparse.Namespace, Interrupt], Awaitable[int]]


async def run_command(command: Command, args: argparse.Namespace) -> int:
    """Run ``command`` with the signal watcher in place; return the exit code.

    That is the command's own code, or ``STOPPED_BY_SIGNAL + N`` when signal N
    stopped a run that would otherwise have succeeded.
    """
    interrupt = Interrupt()
    async with anyio.create_task_group() as tg:
        await tg.start(interrupt.watch)
        try:
            code = await command(args, interrupt)
        finally:
            tg.cancel_scope.cancel()
    if code == OK and interrupt.signal is not None:
        return STOPPED_BY_SIGNAL + interrupt.signal
    return code


async def wait_until(event: anyio.Event, clock: Clock, deadline: float | None) -> bool:
    """Wait for ``event`` until ``deadline`` on ``clock`` (None: no limit); True if it is set."""
    if deadline is None:
        await event.wait()
        return True
    async with anyio.create_task_group() as tg:

        async def time_out() -> None:
            await clock.sleep_until(deadline)
            tg.cancel_scope.cancel()

        tg.start_soon(time_out)
        await event.wait()
        tg.cancel_scope.cancel()
    return event.is_set()

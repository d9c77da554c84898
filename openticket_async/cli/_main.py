"""The ``openticket`` command: ``openticket demo``, ``openticket reserve``, ``openticket holds``.

``demo`` runs the whole product on an embedded fake shop with time sped up
(nothing to configure, no network); ``reserve`` keeps real tickets reserved on
real hosts until Ctrl-C or ``--hold-for``. Both show a live table in a
terminal, plain lines in a pipe, and one JSON object per line with ``--json``
(see ``_output`` for the records). ``holds`` shows a Redis fleet's holds,
read-only (see ``_holds``).

Exit codes: 0 success; 1 a runtime failure (unreachable host, refused token,
sold out, a hold lost); 2 a usage error (bad option, bad GUID, no credentials);
128+N the command was stopped by signal N (130 for Ctrl-C, in every command).
Errors are one line on stderr, never a traceback (``-v`` adds the library's
debug log), and never show a token.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import NoReturn

import anyio

from .._exceptions import (
    AuthenticationError,
    InvalidArgument,
    NotFound,
    OpenTicketError,
    TicketUnavailable,
    TransportError,
)
from .._protocol import guid
from .._version import __version__
from ._credentials import ENV_HOSTS, ENV_OAUTH, ENV_TOKEN, ENV_TOKEN_FILE, secret_values
from ._run import FAILURE, INTERRUPTED, USAGE, Command, CommandError, run_command

__all__ = ["build_parser", "main", "parse_duration"]

PROG = "openticket"
#: Said in both helps: a newcomer's second ``reserve`` run otherwise looks like a bug.
NO_EARLY_RELEASE = (
    "OpenTicket cannot release a reservation early: a unit released when a run ends "
    "stays taken until its 8-minute drop, so a second `openticket reserve` run started "
    "before then may find the ticket sold out (sold_out)."
)
#: Past this, the demo's margins (real slack times the speed) crowd the 8-minute
#: cycle: the other holds would renew twice while the contested one waits for its drop.
MAX_SPEED = 600

_DURATION = re.compile(
    r"(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?"
)


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``20m``, ``1h``, ``1h30m``.

    Raises argparse.ArgumentTypeError for anything else, or a duration that is not
    positive or not finite.
    """
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        match = _DURATION.fullmatch(value)
        if not value or match is None:
            raise argparse.ArgumentTypeError(
                f"not a duration: {text!r} (use e.g. 90s, 20m, 1h)"
            ) from None
        parts = match.groupdict(default="0")
        seconds = float(parts["h"]) * 3600 + float(parts["m"]) * 60 + float(parts["s"])
    if not seconds < float("inf"):  # an infinity, or NaN
        raise argparse.ArgumentTypeError(f"the duration must be a finite number, got {text!r}")
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"the duration must be positive, got {text!r}")
    return seconds


def _guid(text: str) -> str:
    try:
        return guid(text)
    except InvalidArgument:
        raise argparse.ArgumentTypeError(f"not a GUID: {text[:50]!r}") from None


def _bounded_int(low: int, high: int) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return convert


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 1 <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_SPEED}, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Report a usage error in one line and exit with code 2."""
        self.exit(USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The parser of the ``openticket`` command and its subcommands. Raises nothing."""
    parser = _Parser(
        prog=PROG,
        description=f"Keep OpenTicket reservations alive. {NO_EARLY_RELEASE}",
        epilog=(
            "Exit codes: 0 success, 1 runtime failure (unreachable host, refused token, "
            "sold out, hold lost), 2 usage error, 128+N stopped by signal N (130 for Ctrl-C)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log the library's requests (debug)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="watch a cart kept alive on an embedded fake shop (no setup, no network)",
        description=(
            "Run an embedded fake OpenTicket shop with time sped up, keep a cart of tickets "
            "reserved across several 8-minute drops while a rival buyer competes for the "
            "last unit of one of them, then check out."
        ),
    )
    demo.add_argument(
        "--speed", type=_speed, default=60.0, help="clock speed-up (default 60: 8 min in 8 s)"
    )
    demo.add_argument(
        "--tickets", type=_bounded_int(1, 12), default=3, help="tickets in the cart (default 3)"
    )
    demo.add_argument(
        "--cycles", type=_bounded_int(1, 20), default=3, help="renewals per hold (default 3)"
    )
    demo.add_argument("--json", action="store_true", help="one JSON object per event")

    reserve = commands.add_parser(
        "reserve",
        help="reserve tickets on real hosts and keep them reserved",
        description=(
            f"Reserve tickets and keep them reserved until Ctrl-C or --hold-for. The token "
            f"comes from {ENV_TOKEN}, or from {', '.join(ENV_OAUTH)} (OAuth2 refresh; "
            f"set {ENV_TOKEN_FILE} to keep the refreshed tokens). Hosts default to "
            f"${', $'.join(ENV_HOSTS.values())}, then to OpenTicket's own. "
            f"Leaving releases the holds. {NO_EARLY_RELEASE}"
        ),
    )
    reserve.add_argument("--shop", required=True, type=_guid, help="shop GUID")
    reserve.add_argument("--ticket", required=True, type=_guid, help="ticket GUID")
    reserve.add_argument(
        "--quantity", type=_bounded_int(1, 100), default=1, help="units to hold (default 1)"
    )
    reserve.add_argument(
        "--hold-for",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help=(
            "stop after this long (90s, 20m, 1h); default: until Ctrl-C or the fair-use"
            " cap on keeping a ticket (no renewal after 30 min: the holds end at their"
            " next drop, at most 8 min later)"
        ),
    )
    for role, variable in ENV_HOSTS.items():
        reserve.add_argument(
            f"--{role}-host",
            metavar="URL",
            default=None,
            help=f"{role} base URL (default: ${variable} or the OpenTicket host)",
        )
    reserve.add_argument("--json", action="store_true", help="one JSON object per event")

    holds = commands.add_parser(
        "holds",
        help="show a Redis fleet's carts and holds, at-risk first (read-only)",
        description=(
            "Show every live hold that the workers sharing a RedisStore keep: its cart, "
            "ticket, reservation, state, time left, renewals, owning worker and lease, "
            "at-risk first, then by time left. The fleet's shard count is read from "
            "Redis, where its workers record it. Reads only; never shows a token."
        ),
    )
    holds.add_argument("--redis", required=True, metavar="URL",
                       help="the fleet's Redis (redis://, rediss://, redis+sentinel:// or "
                            "redis+cluster://)")
    holds.add_argument("--prefix", default="openticket:",
                       help="the fleet's key prefix (default: openticket:)")
    holds.add_argument("--shards", type=int, default=None, metavar="N",
                       help="the fleet's shard count, as given to RedisStore(shards=N); "
                            "refused if the workers recorded another (default: the count "
                            "they recorded, else the store's: 1 on a single Redis, 16 on "
                            "a cluster)")
    holds.add_argument("--json", action="store_true", help="one JSON object per hold per line")
    holds.add_argument("--watch", action="store_true",
                       help="refresh every second until Ctrl-C")
    return parser


def _describe_error(error: OpenTicketError) -> tuple[str, int]:
    if isinstance(error, InvalidArgument):
        return str(error), USAGE
    if isinstance(error, AuthenticationError):
        return f"the credentials were refused: {error}", FAILURE
    if isinstance(error, TicketUnavailable):
        return f"the ticket is not available: {error}", FAILURE
    if isinstance(error, NotFound):
        return f"no such shop or ticket: {error}", FAILURE
    if isinstance(error, TransportError):
        return f"cannot reach the OpenTicket API: {error}", FAILURE
    return f"{type(error).__name__}: {error}", FAILURE


def _report(message: str, command: str | None, environ: Mapping[str, str]) -> None:
    for secret in secret_values(environ):
        # the library never puts a token in a message; this is the last line of defence
        message = message.replace(secret, "***")
    prefix = PROG if command is None else f"{PROG} {command}"
    first_line = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"{prefix}: error: {first_line}", file=sys.stderr, flush=True)


class _OneLine(logging.Formatter):
    """Log records as one line each: the exception's message, never its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        """The message, plus the exception's type and text when there is one."""
        text = f"{PROG}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            text += f" ({type(error).__name__}: {error})"
        return text.splitlines()[0]


def _configure_logging(verbose: bool) -> None:
    logger = logging.getLogger("openticket_async")
    if logger.handlers:  # OPENTICKET_LOG set: the library's own handler is in place
        return
    handler = logging.StreamHandler(sys.stderr)
    if verbose:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(_OneLine())
        # the command shows every hold event itself: the lifecycle lines would say it twice
        handler.addFilter(lambda record: not hasattr(record, "openticket_event"))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)


def _command(name: str) -> Command:
    if name == "demo":
        # the demo pulls in the test kit (the fake server): loaded only when asked for
        from ._demo import run_demo

        return run_demo
    if name == "holds":
        # the fleet view pulls in redis: loaded only when asked for
        from ._holds import run_holds

        return run_holds
    from ._reserve import run_reserve

    return run_reserve


def _leaves(error: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups; task groups always wrap."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _failure(error: BaseException, args: argparse.Namespace) -> int:
    """Report ``error`` in one line and return the exit code; re-raise what is not ours."""
    leaves = _leaves(error)
    for leaf in leaves:
        if isinstance(leaf, SystemExit | GeneratorExit):
            raise leaf
    for leaf in leaves:
        if isinstance(leaf, CommandError):
            _report(str(leaf), args.command, os.environ)
            return leaf.exit_code
    for leaf in leaves:
        if isinstance(leaf, OpenTicketError):
            message, code = _describe_error(leaf)
            _report(message, args.command, os.environ)
            return code
    if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        # Ctrl-C before the signal handlers were installed or after they were removed
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        return INTERRUPTED
    if all(isinstance(leaf, BrokenPipeError) for leaf in leaves):
        # stdout closed by its reader (`| head`): nobody is left to tell
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return FAILURE
    if args.verbose:
        raise error
    leaf = leaves[0]
    _report(
        f"unexpected {type(leaf).__name__}: {leaf} (run with -v for the traceback)",
        args.command,
        os.environ,
    )
    return FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``openticket`` command with ``argv`` (default: ``sys.argv[1:]``).

    Returns the exit code. Raises SystemExit only for ``--help``, ``--version`` and
    usage errors (code 2); an unexpected error is reported in one line (re-raised
    with ``-v``).
    """
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return anyio.run(run_command, _command(args.command), args)
    except BaseException as error:  # noqa: BLE001 (every failure becomes one line and a code)
        return _failure(error, args)


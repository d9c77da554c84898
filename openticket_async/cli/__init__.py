"""The ``openticket`` command: ``openticket demo`` and ``openticket reserve``.

The console script calls :func:`main`; ``python -m openticket_async.cli`` runs
it too. The parts, each with one job:

- ``_main``: the parser, the exit codes, errors as one line on stderr;
- ``_run``: how a command runs (Ctrl-C, signals, the choice of output);
- ``_credentials``: the token and the hosts, from options and the environment;
- ``_output``: the records of a run and their plain and JSON lines;
- ``_live``: the live table (needs rich, the ``[cli]`` extra);
- ``_demo`` and ``_reserve``: the two commands.

Nothing in the library imports this package.
"""

from ._main import build_parser, main, parse_duration

__all__ = ["build_parser", "main", "parse_duration"]

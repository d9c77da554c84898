"""Every command in README.md and docs/*.md names what exists, as the code spells it.

tests/test_docs_examples.py runs the Python blocks; this module reads the shell
blocks (```sh and ```console fences) and the option tables of docs/cli.md. An
``openticket`` or ``python -m openticket_async.testing`` line must parse with
the command's own parser (placeholders such as ``SHOP_GUID`` filled in), a
``make`` target must be in the Makefile, a ``pip install`` extra in
pyproject.toml. Nothing is run: a command that reaches a host stays on paper.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from openticket_async.cli import build_parser
from openticket_async.testing.__main__ import _parse as parse_serve

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
GUID = "11111111-1111-1111-1111-111111111111"

_SHELL = re.compile(r"^```(?:sh|console)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_COMMENT = re.compile(r"\s+#\s.*$")
_PLACEHOLDER_GUID = re.compile(r"\b[A-Z]+_GUID\b")
_OPTIONAL = re.compile(r"\[(--[\w-]+)\]")  # usage notation: "[--uvloop]"


def commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every command in a shell block, one per ``&&`` or ``|`` step."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for block in _SHELL.finditer(text):
            first = text.count("\n", 0, block.start()) + 2
            lines = block.group(1).replace("\\\n", " ").splitlines()
            for offset, raw in enumerate(lines):
                line = _COMMENT.sub("", raw.removeprefix("$ ")).strip()
                if not line or line.startswith(("{", '"')):  # a console block's output
                    continue
                where = f"{document.relative_to(ROOT)}:{first + offset}"
                for step in re.split(r"\s*(?:&&|\|)\s*", _OPTIONAL.sub(r"\1", line)):
                    found.append((where, shlex.split(_PLACEHOLDER_GUID.sub(GUID, step))))
    return found


COMMANDS = commands()


def named(program: str) -> list[tuple[str, list[str]]]:
    return [(where, argv) for where, argv in COMMANDS if argv and argv[0].endswith(program)]


def _ids(found: tuple[str, list[str]]) -> str:
    return f"{found[0]} {shlex.join(found[1])}"


def _parses(parse: Callable[[list[str]], object], argv: list[str]) -> int:
    """The exit status ``parse(argv)`` ends with: 0 if it returns (or prints --help)."""
    try:
        parse(argv)
    except SystemExit as stop:
        return int(stop.code or 0)
    return 0


def test_the_shell_blocks_are_found() -> None:
    assert len(named("openticket")) >= 10
    assert named("make")
    assert named("pip")


@pytest.mark.parametrize(
    "found", [c for c in named("openticket") if "COMMAND" not in c[1]], ids=_ids
)
def test_each_openticket_command_parses(found: tuple[str, list[str]]) -> None:
    assert _parses(build_parser().parse_args, found[1][1:]) == 0


@pytest.mark.parametrize(
    "found", [c for c in named("python") if c[1][1:3] == ["-m", "openticket_async.testing"]],
    ids=_ids,
)
def test_each_fake_server_command_parses(found: tuple[str, list[str]]) -> None:
    assert _parses(parse_serve, found[1][3:]) == 0


def test_the_makefile_has_every_target_the_docs_run() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w-]+):", makefile, re.MULTILINE))
    prose = {t for doc in DOCUMENTS for t in re.findall(r"`make ([\w-]+)", doc.read_text())}
    run = {argv[1] for _, argv in named("make")}

    assert prose | run <= targets


def test_every_file_the_docs_run_exists() -> None:
    files = {word for _, argv in COMMANDS for word in argv if re.fullmatch(r"[\w./-]+\.py", word)}

    assert files
    assert sorted(f for f in files if not (ROOT / f).is_file()) == []


def test_every_extra_the_docs_install_is_declared() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = set(pyproject["project"]["optional-dependencies"])
    installed = {
        extra
        for _, argv in named("pip")
        for word in argv
        for extras in re.findall(r"\[([\w,]+)\]", word)
        for extra in extras.split(",")
    }
    assert installed
    assert installed <= declared


# -- docs/cli.md's option tables ------------------------------------------------


def subcommand(name: str) -> argparse.ArgumentParser:
    [choices] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    parser: argparse.ArgumentParser = choices.choices[name]
    return parser


def option_rows(command: str) -> list[str]:
    """The table rows of docs/cli.md's section on ``openticket command``."""
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split(f"## `openticket {command}`\n", 1)[1].split("\n## ", 1)[0]
    return [row for row in section.splitlines() if row.startswith("| `--")]


@pytest.mark.parametrize("command", ["demo", "reserve", "holds"])
def test_each_option_in_the_cli_guide_exists(command: str) -> None:
    named_options = {o for row in option_rows(command) for o in re.findall(r"`(--[\w-]+)", row)}
    assert named_options
    assert named_options <= set(subcommand(command)._option_string_actions)


@pytest.mark.parametrize(
    ("command", "required"),
    [("demo", []), ("reserve", ["--shop", GUID, "--ticket", GUID]), ("holds", ["--redis", "x"])],
)
def test_each_default_in_the_cli_guide_is_the_parsers(command: str, required: list[str]) -> None:
    parsed = vars(build_parser().parse_args([command, *required]))
    stated = {}
    for row in option_rows(command):
        option = re.match(r"\| `--([\w-]+)", row)
        assert option is not None
        column = re.match(r"\| `[^`]+` \| (\d+)\b", row)  # the demo table's default column
        remark = re.search(r"\(default `?([^`),;:]+:?)`?\)", row)  # "(default 1)"
        default = column or remark
        if default is not None:
            stated[option.group(1)] = default.group(1)
    assert stated
    for name, text in stated.items():
        assert str(parsed[name.replace("-", "_")]).removesuffix(".0") == text, name


# -- docs/capacity.md ----------------------------------------------------------


@pytest.fixture(scope="module")
def onsale() -> ModuleType:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import onsale as module
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return module


def test_the_capacity_guides_command_spells_out_the_defaults(onsale: ModuleType) -> None:
    [(_, argv)] = [c for c in named("python") if c[1][1:2] == ["benchmarks/onsale.py"]]

    assert len(argv) > 2
    assert vars(onsale.arguments(argv[2:])) == vars(onsale.arguments([]))


def test_the_capacity_guides_figures_are_benchmarks_readmes() -> None:
    guide = (ROOT / "docs" / "capacity.md").read_text(encoding="utf-8")
    quoted = re.search(r"^```text\n(.*?)^```$", guide, re.DOTALL | re.MULTILINE)
    benchmarks = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")

    assert quoted is not None
    lines = [line for line in quoted.group(1).splitlines() if line]
    assert len(lines) >= 5
    assert [line for line in lines if line not in benchmarks.splitlines()] == []

"""The floor plan: docs/architecture.md matches the code, and import-linter's contracts hold.

The contracts live in pyproject.toml (``[tool.importlinter]``) and ``make lint``
runs them; these tests also read the plan's page and check it against the real
import graph (grimp, import-linter's own graph library), imports under
``if TYPE_CHECKING:`` included.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grimp
import importlinter.api  # noqa: F401 (configures import-linter, as its command does)
import pytest
from importlinter.application import use_cases
from importlinter.contracts.acyclic_siblings import AcyclicSiblingsContract
from importlinter.contracts.forbidden import ForbiddenContract
from importlinter.contracts.layers import LayersContract
from importlinter.contracts.protected import ProtectedContract
from importlinter.domain.contract import Contract

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
PLAN = ROOT / "docs" / "architecture.md"
PACKAGE = "openticket_async"
PACKAGE_DIR = ROOT / PACKAGE
#: The most lines a module of the package may have: rooms keep to one job each
#: (STYLE.md: about 50 to 450 lines; past that, a second job hides inside).
MAX_MODULE_LINES = 460
#: The plan's name for the package's own ``__init__``: the front door.
DOOR = "__init__"
CONTRACT_TYPES: dict[str, type[Contract]] = {
    "layers": LayersContract,
    "forbidden": ForbiddenContract,
    "protected": ProtectedContract,
    "acyclic_siblings": AcyclicSiblingsContract,
}


# -- the code's side ---------------------------------------------------------------------


def build_graph(package: str = PACKAGE, *, externals: bool = False) -> grimp.ImportGraph:
    """The package's import graph as import-linter sees it (TYPE_CHECKING imports count)."""
    return grimp.build_graph(
        package,
        include_external_packages=externals,
        exclude_type_checking_imports=False,
        cache_dir=None,
    )


@functools.cache
def package_modules() -> frozenset[str]:
    return frozenset(build_graph().modules)


def cycle_imports(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Every direct import that lies on an import cycle (a chain leads back to its importer)."""
    return sorted(
        (importer, imported)
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if importer == imported or graph.chain_exists(importer=imported, imported=importer)
    )


def options() -> Any:
    return use_cases.read_user_options(str(PYPROJECT))


def contract_options(contract_id: str) -> dict[str, Any]:
    [found] = [c for c in options().contracts_options if c["id"] == contract_id]
    return dict(found)


def broken_contracts(imports: Iterable[tuple[str, str]]) -> list[str]:
    """The contracts that a package of the real modules with only ``imports`` would break."""
    real = build_graph(externals=True)
    graph = grimp.ImportGraph()
    for module in real.modules:
        graph.add_module(module, is_squashed=real.is_module_squashed(module))
    for importer, imported in imports:
        graph.add_import(importer=importer, imported=imported)
    session = options().session_options
    broken = []
    for raw in options().contracts_options:
        contract = CONTRACT_TYPES[raw["type"]](raw["name"], session, raw)
        if not contract.check(graph, verbose=False).kept:
            broken.append(raw["id"])
    return broken


# -- the plan's side ---------------------------------------------------------------------


def plan_text() -> str:
    return PLAN.read_text(encoding="utf-8")


def section(title: str) -> str:
    text = plan_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def plan_floors() -> list[set[str]]:
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section("Floors"), re.M)
    assert [int(number) for number, _ in rows] == list(range(1, len(rows) + 1))
    return [set(re.findall(r"`([^`]+)`", rooms)) for _, rooms in rows]


def plan_rooms() -> list[str]:
    return re.findall(r"^\| `([^`]+)` \| ", section("Rooms"), re.M)


def diagram() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The Mermaid diagram's rooms (node id -> room) and arrows (room, room)."""
    [block] = re.findall(r"```mermaid\n(.*?)```", plan_text(), re.S)
    nodes = dict(re.findall(r'^\s*(\w+)\["([^"]+)"\]\s*$', block, re.M))
    edges = re.findall(r"^\s*(\w+) --> (\w+)\s*$", block, re.M)
    return nodes, [(nodes[a], nodes[b]) for a, b in edges]


def room_module(room: str) -> str:
    return PACKAGE if room == DOOR else f"{PACKAGE}.{room}"


def room_of(module: str, rooms: Iterable[str]) -> str | None:
    """The room ``module`` is in: the deepest room that is it or contains it."""
    if module == PACKAGE:
        return DOOR if DOOR in rooms else None
    owners = [
        room
        for room in rooms
        if room != DOOR
        and (module == room_module(room) or module.startswith(room_module(room) + "."))
    ]
    return max(owners, key=len, default=None)


def arrow_imports(arrows: Iterable[tuple[str, str]]) -> dict[tuple[str, str], set[tuple[str, str]]]:
    """For each arrow, the direct imports in the code from a module of one room to the other."""
    graph = build_graph()
    rooms = set(diagram()[0].values())
    found: dict[tuple[str, str], set[tuple[str, str]]] = {arrow: set() for arrow in arrows}
    for importer in graph.modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            arrow = (room_of(importer, rooms), room_of(imported, rooms))
            if arrow in found:
                found[arrow].add((importer, imported))  # type: ignore[index]
    return found


def module_lines() -> dict[str, int]:
    """Every module of the package (its path under the package) and its number of lines."""
    return {
        path.relative_to(PACKAGE_DIR).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
    }


# -- the contracts -----------------------------------------------------------------------


def test_lint_imports_keeps_every_contract(capsys: pytest.CaptureFixture[str]) -> None:
    passed = use_cases.lint_imports(str(PYPROJECT), cache_dir=None, no_logo=True)
    report = capsys.readouterr().out
    assert passed, report
    assert "BROKEN" not in report


def test_the_contracts_count_type_checking_imports() -> None:
    session = options().session_options
    assert session["exclude_type_checking_imports"] in (False, "False", "false")


def test_the_package_has_no_import_cycle_type_checking_imports_included() -> None:
    assert cycle_imports(build_graph()) == []


def test_a_cycle_closed_by_a_type_checking_import_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = tmp_path / "floorplan_probe"
    probe.mkdir()
    (probe / "__init__.py").write_text("")
    (probe / "low.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import high\n"
    )
    (probe / "high.py").write_text("from . import low\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cycle_imports(build_graph("floorplan_probe")) == [
        ("floorplan_probe.high", "floorplan_probe.low"),
        ("floorplan_probe.low", "floorplan_probe.high"),
    ]


# -- docs/architecture.md against the code -----------------------------------------------


def test_every_room_the_plan_names_exists() -> None:
    named = set(plan_rooms()) | set(diagram()[0].values()) | set().union(*plan_floors())
    missing = sorted(room for room in named if room_module(room) not in package_modules())
    assert missing == []


def test_every_module_of_the_package_is_in_a_room_of_the_plan() -> None:
    rooms = plan_rooms()
    assert sorted(m for m in package_modules() if room_of(m, rooms) is None) == []


def test_the_floors_of_the_plan_are_the_contracts() -> None:
    layers = contract_options("floors")["layers"]
    contract = [{room.strip() for room in re.split(r"[|:]", layer)} for layer in layers]
    assert plan_floors() == contract


def test_the_diagram_and_the_rooms_table_show_the_same_rooms() -> None:
    nodes, _ = diagram()
    assert sorted(nodes.values()) == sorted(plan_rooms())
    assert len(set(plan_rooms())) == len(plan_rooms())


def test_every_arrow_of_the_diagram_is_an_import_the_code_makes() -> None:
    _, arrows = diagram()
    drawn_only = sorted(arrow for arrow, imports in arrow_imports(arrows).items() if not imports)
    assert drawn_only == []


def test_the_contracts_allow_every_arrow_of_the_diagram() -> None:
    _, arrows = diagram()
    imports = set().union(*arrow_imports(arrows).values())
    assert imports, "the diagram draws no import"
    assert broken_contracts(imports) == []


def test_an_arrow_drawn_up_a_floor_breaks_the_contracts() -> None:
    _, arrows = diagram()
    imports = set().union(*arrow_imports(arrows).values())
    upward = (room_module("_models"), room_module("_manager"))
    assert "floors" in broken_contracts({*imports, upward})


# -- the size of a room ------------------------------------------------------------------


def test_no_module_of_the_package_is_longer_than_the_limit() -> None:
    lines = module_lines()
    assert len(lines) > 50, "the package's modules were not found"
    over = {name: n for name, n in lines.items() if n > MAX_MODULE_LINES}
    assert over == {}

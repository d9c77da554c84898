"""Every Python block in README.md and docs/*.md runs as written.

A block runs in a fresh interpreter of its own (``python -c``); a block that is
a pytest module (it defines ``test_`` functions) is saved to a file and run by
pytest, with the openticket plugin's fixtures. A block that has to stay a
fragment carries an HTML comment right above it::

    <!-- fragment: completed in examples/x.py, tested by tests/test_x.py -->

and every file (or ``file::test``) it names must exist: that is where the
fragment is completed and run. A whole block followed by "It prints:" and a
``text`` fence must print exactly that.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import attrs
import pytest

from openticket_async import (
    OAuth2,
    OpenTicketClient,
    Renewed,
    ReservationManager,
    TokenSet,
)
from openticket_async.testing import FakeClock, FakeOpenTicket

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Real seconds one block may take (each starts an interpreter and a fake server).
BLOCK_TIMEOUT = 25

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_FRAGMENT = re.compile(r"<!--\s*fragment:\s*completed in (.+?)\s*-->\n\Z")
_NAMED = re.compile(r"[\w./-]+\.py(?:::\w+)?")
_PRINTS = re.compile(r"\s*It prints:\n\n```text\n(.*?)^```$", re.DOTALL | re.MULTILINE)


@attrs.frozen
class Block:
    where: str  # "README.md:42", the line of the opening fence
    code: str
    completed_in: str | None  # the fragment comment's text, None for a whole block
    prints: str | None = None  # what the document says it prints, exactly

    @property
    def is_pytest_module(self) -> bool:
        return re.search(r"^(async )?def test_", self.code, re.MULTILINE) is not None


def blocks() -> list[Block]:
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for match in _FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            fragment = _FRAGMENT.search(text, 0, match.start())
            prints = _PRINTS.match(text, match.end())
            found.append(
                Block(
                    where=f"{document.relative_to(ROOT)}:{line}",
                    code=match.group(1),
                    completed_in=fragment.group(1) if fragment else None,
                    prints=prints.group(1) if prints else None,
                )
            )
    return found


BLOCKS = blocks()
WHOLE = [block for block in BLOCKS if block.completed_in is None]
FRAGMENTS = [block for block in BLOCKS if block.completed_in is not None]


def _ids(block: Block) -> str:
    return block.where


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own documents, our own interpreter)
        command, cwd=cwd, capture_output=True, text=True, timeout=BLOCK_TIMEOUT, check=False
    )


def test_every_python_fence_is_found() -> None:
    fences = sum(doc.read_text(encoding="utf-8").count("```python\n") for doc in DOCUMENTS)
    assert len(BLOCKS) == fences
    assert len(WHOLE) >= 6  # the README's quickstart and manager, testing.md's four


@pytest.mark.realtime
@pytest.mark.parametrize("block", [b for b in WHOLE if not b.is_pytest_module], ids=_ids)
def test_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    result = run([sys.executable, "-c", block.code], tmp_path)
    assert result.returncode == 0, result.stderr
    if block.prints is not None:
        assert result.stdout == block.prints


def test_a_block_that_says_what_it_prints_is_checked() -> None:
    assert any(block.prints for block in WHOLE)  # docs/errors.md's tour of the errors


@pytest.mark.realtime
@pytest.mark.parametrize("block", [b for b in WHOLE if b.is_pytest_module], ids=_ids)
def test_test_module_block_passes_under_pytest(block: Block, tmp_path: Path) -> None:
    module = tmp_path / "test_from_the_docs.py"
    module.write_text(block.code, encoding="utf-8")
    tests = len(re.findall(r"^(?:async )?def test_", block.code, re.MULTILINE))

    result = run(
        [
            *(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"),
            *("-o", "asyncio_default_fixture_loop_scope=function", module.name),
        ],
        tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{tests} passed" in result.stdout


@pytest.mark.parametrize("block", FRAGMENTS, ids=_ids)
def test_fragment_names_where_it_is_completed(block: Block) -> None:
    assert block.completed_in is not None
    named = _NAMED.findall(block.completed_in)
    assert named, f"{block.where}: the fragment comment names no file"
    for reference in named:
        path, _, test = reference.partition("::")
        assert (ROOT / path).is_file(), f"{block.where}: {path} does not exist"
        if test:
            source = (ROOT / path).read_text(encoding="utf-8")
            assert re.search(rf"def {test}\(", source), f"{block.where}: no {test} in {path}"


@pytest.mark.realtime
def test_the_quickstart_reads_back_the_order_it_made(tmp_path: Path) -> None:
    [quickstart] = [b for b in WHOLE if "again = await client.get_order" in b.code]

    result = run([sys.executable, "-c", quickstart.code], tmp_path)

    assert result.returncode == 0, result.stderr
    assert " True " in result.stdout  # the order read back is the order created


# -- the fragments' completions -------------------------------------------------


@pytest.mark.asyncio
async def test_a_background_worker_persists_each_refresh_and_reads_events() -> None:
    """README, "In a background worker": OAuth2 with on_refresh, and the event stream."""
    clock = FakeClock()
    saved: list[TokenSet] = []  # stands in for save_tokens: a database, a file, Redis

    def save_tokens(tokens: TokenSet) -> None:
        saved.append(tokens)

    async with FakeOpenTicket(clock, access_token_ttl=timedelta(minutes=5)) as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop, stock=2)
        auth = OAuth2(
            "test-client", "test-secret", token=fake.issue_token(), on_refresh=save_tokens
        )
        async with (
            OpenTicketClient(auth=auth, hosts=fake.hosts, clock=clock) as client,
            ReservationManager(client) as manager,
        ):
            stream = manager.events()

            async def notify_customers() -> Renewed:
                async for event in stream:
                    if isinstance(event, Renewed):
                        return event
                raise AssertionError("the stream ended")

            reading = asyncio.create_task(notify_customers())
            [hold] = await manager.cart(shop.guid).add(ticket.guid)
            await clock.advance(timedelta(minutes=8))  # the access token expired on the way
            renewed = await reading

    assert renewed.hold is hold
    assert saved  # the new tokens were handed over before they were used
    assert fake.refresh_count == len(saved)

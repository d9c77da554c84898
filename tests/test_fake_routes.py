"""The fake server's one route table: what it serves, what faults and the docs name."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from openticket_async.testing import ROUTES, FakeOpenTicket
from openticket_async.testing._routes import ROUTE_TABLE, Route

TESTING_DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"
GUID = "11111111-1111-1111-1111-111111111111"


def concrete(path: str) -> str:
    """``path`` with every ``{placeholder}`` filled in with a GUID."""
    return re.sub(r"\{[a-z_]+\}", GUID, path)


@pytest.mark.asyncio
@pytest.mark.parametrize("route", ROUTE_TABLE, ids=lambda r: f"{r.method} {r.path}")
async def test_each_row_of_the_table_is_served_under_its_name(
    openticket_fake: FakeOpenTicket, route: Route
) -> None:
    # A status fault stands in front of the handler, so only the name can route it here.
    openticket_fake.faults.status(route.name, 418)
    async with (
        aiohttp.ClientSession() as session,
        session.request(route.method, openticket_fake.url + concrete(route.path)) as answer,
    ):
        status = answer.status
    assert status == 418
    assert [request.route for request in openticket_fake.requests] == [route.name]


def test_the_testing_guide_names_every_route_with_its_paths() -> None:
    rows = re.findall(r"^\| `([a-z_]+)` \| `(\w+) ([^`]+)`(.*)\|$", TESTING_DOC.read_text(), re.M)
    documented = {name: (method, path + rest) for name, method, path, rest in rows}
    assert documented.keys() == ROUTES
    for route in ROUTE_TABLE:
        method, text = documented[route.name]
        assert method == route.method
        assert route.path in text, f"docs/testing.md does not name {route.path} for {route.name}"

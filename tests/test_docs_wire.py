"""docs/wire.md's JSON shapes are the fake server's answers, key for key.

wire.md is the one written record of the shapes we assume, and it says the fake
answers in exactly those shapes. Each ```json block and each error body of its
table is held to what the fake really sends (raw HTTP, no client in between):
the same keys at every level, the same JSON types. ``"…"`` stands for any
string and ``{…}`` for any value.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from openticket_async.testing import FakeClock, FakeOpenTicket

WIRE = Path(__file__).resolve().parent.parent / "docs" / "wire.md"
ANY = "{…}"
REDIRECT = "http://127.0.0.1/callback"

_JSON = re.compile(r"^```json\n(.*?)^```$", re.DOTALL | re.MULTILINE)
_ERROR_ROW = re.compile(r"^\| [^|]+ \| (\d{3}) \| `(\{.*\})` \|$", re.MULTILINE)


def documented() -> dict[str, list[Any]]:
    """The JSON blocks of each ``## `` section of wire.md, by the section's title."""
    sections = re.split(r"^## ", WIRE.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]
    return {
        part.split("\n", 1)[0]: [json.loads(b.replace(ANY, json.dumps(ANY))) for b in blocks]
        for part in sections
        for blocks in [_JSON.findall(part)]
    }


def differences(doc: Any, real: Any, path: str = "$") -> list[str]:
    """Where ``real`` departs from the documented shape ``doc`` (empty: it does not)."""
    if doc == ANY:
        return []
    if isinstance(doc, dict) and isinstance(real, dict):
        keys = [f"{path}.{key}" for key in sorted(doc.keys() ^ real.keys())]
        both = sorted(doc.keys() & real.keys())
        return keys + [d for key in both for d in differences(doc[key], real[key], f"{path}.{key}")]
    if isinstance(doc, list) and isinstance(real, list):
        if bool(doc) != bool(real):
            return [f"{path}: {len(real)} items"]
        return differences(doc[0], real[0], f"{path}[0]") if doc else []
    return [] if type(doc) is type(real) else [f"{path}: {type(real).__name__}"]


async def answers(fake: FakeOpenTicket[FakeClock]) -> dict[str, tuple[int, Any]]:
    """What the fake answers to each call wire.md shows, by name: (status, body)."""
    shop = fake.add_shop()
    ticket, gone = fake.add_ticket(shop, stock=5), fake.add_ticket(shop, stock=0)
    method = fake.add_payment_method(shop)
    auth, api, base = fake.hosts.auth, fake.hosts.api, f"{fake.hosts.shop}/{shop.guid}"
    reserve = f"{base}/reserve/ticket/{ticket.guid}"
    seen: dict[str, tuple[int, Any]] = {}
    async with aiohttp.ClientSession() as http:

        async def call(name: str, verb: str, url: str, token: str | None = None, **kw: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with http.request(verb, url, headers=headers, **kw) as answer:
                seen[name] = (answer.status, await answer.json())
            return seen[name][1]

        query = {"client_id": "test-client", "redirect_uri": REDIRECT, "response_type": "code"}
        async with http.get(f"{auth}/tokens/authorize", params=query, allow_redirects=False) as go:
            code = re.search(r"code=([^&]+)", go.headers["Location"])
        assert code is not None
        grant = {
            "grant_type": "authorization_code",
            "code": code.group(1),
            "redirect_uri": REDIRECT,
            "client_id": "test-client",
            "client_secret": "test-secret",
        }
        token = (await call("token", "POST", f"{auth}/tokens", data=grant))["access_token"]
        reservation = await call("reserve", "GET", reserve, token)
        await call("payment methods", "GET", f"{api}/shop/{shop.guid}/payment_methods", token)
        body = order_request(method.guid, reservation)
        order = await call("order", "POST", f"{base}/order", token, json=body)
        await call("get order", "GET", f"{api}/order/{order['guid']}", token)
        await call("me", "GET", f"{auth}/users/me", token)

        await call("401", "GET", reserve)
        await call("404", "GET", f"{api}/order/{ticket.guid}", token)
        await call("409", "GET", f"{base}/reserve/ticket/{gone.guid}", token)
        dropping = await call("dropping", "GET", reserve, token)
        await fake.clock.advance(timedelta(minutes=8))  # the reservation drops
        late = order_request(method.guid, dropping)
        await call("410", "POST", f"{base}/order", token, json=late)
        await call("422", "POST", f"{base}/order", token, json={})
    return seen


def order_request(method: str, reservation: dict[str, Any]) -> Any:
    """wire.md's order request body, its placeholders filled in from ``reservation``."""
    text = json.dumps(documented()["Order"][0])
    for placeholder, value in (
        ("<payment method guid>", method),
        ("<ticket guid>", reservation["ticket_guid"]),
        ("<reservation guid>", reservation["guid"]),
    ):
        text = text.replace(placeholder, value)
    filled = json.loads(text)
    filled["tickets"][0]["products"] = [product["guid"] for product in reservation["products"]]
    filled["receiver"].update(email="ada@example.com", firstname="Ada", lastname="Lovelace")
    return filled


BLOCKS = [  # (section of wire.md, which of its blocks, the call whose answer it shows)
    ("Token endpoint", 0, "token"),
    ("Reservation (answer to reserve, 200)", 0, "reserve"),
    ("Payment methods (200)", 0, "payment methods"),
    ("Order", 1, "order"),
    ("Order", 1, "get order"),
    ("Current user (200)", 0, "me"),
]


def test_every_json_block_is_held_to_an_answer() -> None:
    blocks = {(title, i) for title, found in documented().items() for i in range(len(found))}
    assert blocks - {(title, i) for title, i, _ in BLOCKS} == {("Order", 0)}  # the request


@pytest.mark.asyncio
@pytest.mark.parametrize(("section", "index", "call"), BLOCKS, ids=[b[2] for b in BLOCKS])
async def test_the_fake_answers_in_the_documented_shape(
    openticket_fake: FakeOpenTicket[FakeClock], section: str, index: int, call: str
) -> None:
    status, body = (await answers(openticket_fake))[call]

    assert status in (200, 201)
    assert differences(documented()[section][index], body) == []


@pytest.mark.asyncio
async def test_the_documented_order_request_is_accepted(
    openticket_fake: FakeOpenTicket[FakeClock],
) -> None:
    status, _ = (await answers(openticket_fake))["order"]

    assert status == 201


def error_rows() -> list[tuple[str, Any]]:
    section = WIRE.read_text(encoding="utf-8").split("## Errors\n", 1)[1].split("\n## ", 1)[0]
    return [(status, json.loads(body)) for status, body in _ERROR_ROW.findall(section)]


def test_the_error_table_is_found() -> None:
    assert [status for status, _ in error_rows()] == ["401", "404", "409", "410", "422"]


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "body"), error_rows(), ids=[s for s, _ in error_rows()])
async def test_each_error_body_is_the_documented_one(
    openticket_fake: FakeOpenTicket[FakeClock], status: str, body: dict[str, Any]
) -> None:
    real_status, real = (await answers(openticket_fake))[status]

    assert real_status == int(status)
    assert real["error"] == body["error"]
    assert differences(body, real) == []

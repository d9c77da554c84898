"""Every public exception pickles with all its fields, and never with a secret.

Error reporters and process pools pickle exceptions; one that cannot be rebuilt
turns a useful report into ``TypeError: __init__() missing ...``.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import timedelta
from types import MappingProxyType

import pytest

import openticket_async
import openticket_async.stores.redis
import openticket_async.testing
from openticket_async import (
    APIError,
    AuthenticationError,
    BearerToken,
    CheckoutInProgress,
    DecodeError,
    Hold,
    HoldPolicy,
    HoldsNotReady,
    HoldState,
    InvalidArgument,
    NotFound,
    OpenTicketClient,
    OpenTicketError,
    Product,
    RateLimited,
    Receiver,
    ReservationManager,
    RetryPolicy,
    ServerError,
    TicketUnavailable,
    TransportError,
    UsageError,
)
from openticket_async.stores.redis import StoreUnavailable
from openticket_async.testing import FakeClock, FakeOpenTicket

#: Pickle protocols an error reporter may use. Protocol 2 is the oldest that can
#: pickle a Hold (a class with __slots__), which HoldsNotReady carries.
PROTOCOLS = range(2, pickle.HIGHEST_PROTOCOL + 1)

_API = {"method": "GET", "path": "/shop/s/reserve/ticket/t", "request_id": "req-42"}

#: One instance of each public exception, every field set to a value that is not
#: its default.
SAMPLES: dict[type[BaseException], Callable[[], BaseException]] = {
    OpenTicketError: lambda: OpenTicketError("something failed"),
    InvalidArgument: lambda: InvalidArgument("shop_guid is not a GUID"),
    UsageError: lambda: UsageError("the client is closed"),
    CheckoutInProgress: lambda: CheckoutInProgress(
        "cart c1 is being checked out", cart_id="c1", retry_after=4.5
    ),
    HoldsNotReady: lambda: HoldsNotReady(
        "1 hold(s) of cart c1 could not be renewed",
        holds=[
            Hold(
                id="h1",
                cart_id="c1",
                shop_guid="shop",
                ticket_guid="ticket",
                reservation=None,
                created_at=12.5,
                metadata={"seat": "A7"},
                state=HoldState.AT_RISK,
                renewals=3,
            )
        ],
    ),
    TransportError: lambda: TransportError(
        "connection reset", method="POST", path="/shop/s/order",
        may_have_reached_server=True, timed_out=True,
    ),
    DecodeError: lambda: DecodeError(
        "missing field", field="guid", status=200, content_type="text/html",
        snippet="<html>", method="GET", path="/api/order/o",
    ),
    APIError: lambda: APIError("teapot", status=418, body='{"error": "teapot"}', **_API),
    AuthenticationError: lambda: AuthenticationError("unauthenticated", status=401, **_API),
    NotFound: lambda: NotFound("no such ticket", status=404, body="{}", **_API),
    TicketUnavailable: lambda: TicketUnavailable("sold out", status=409, **_API),
    RateLimited: lambda: RateLimited("slow down", status=429, retry_after=7.5, **_API),
    ServerError: lambda: ServerError("busy", status=503, retry_after=2.0, **_API),
    StoreUnavailable: lambda: StoreUnavailable("Redis refused", refused=True),
}  # fmt: skip


def public_exceptions() -> set[type[BaseException]]:
    """Every exception class a user can import from a public module."""
    found: set[type[BaseException]] = set()
    for module in (openticket_async, openticket_async.testing, openticket_async.stores.redis):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, type) and issubclass(value, BaseException):
                found.add(value)
    return found


def round_trip(error: BaseException, protocol: int) -> BaseException:
    return pickle.loads(pickle.dumps(error, protocol))  # noqa: S301 (our own bytes)


def fields(error: BaseException) -> dict[str, str]:
    # repr, not the values: a Hold has no equality, but its repr names what matters.
    return {name: repr(value) for name, value in vars(error).items()}


def test_every_public_exception_has_a_sample() -> None:
    assert set(SAMPLES) == public_exceptions()


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", SAMPLES, ids=lambda kind: kind.__name__)
def test_exception_round_trips_with_its_fields_and_message(
    kind: type[BaseException], protocol: int
) -> None:
    error = SAMPLES[kind]()
    error.add_note("while checking out cart c1")

    copy = round_trip(error, protocol)

    assert type(copy) is kind
    assert copy.args == error.args
    assert fields(copy) == fields(error)
    assert str(copy) == str(error)
    assert copy.__notes__ == ["while checking out cart c1"]


def test_pickled_api_error_holds_the_redacted_body_only() -> None:
    error = AuthenticationError(
        "refused",
        status=400,
        method="POST",
        path="/auth/tokens",
        body='{"access_token": "at_sup3rsecret", "error": "invalid_grant"}',
    )

    data = pickle.dumps(error)

    assert b"at_sup3rsecret" not in data
    assert round_trip(error, pickle.DEFAULT_PROTOCOL).body == error.body  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_an_error_from_the_fake_server_keeps_what_a_reporter_needs() -> None:
    async with FakeOpenTicket(FakeClock()) as fake:
        shop = fake.add_shop()
        token = fake.issue_token().access_token
        async with OpenTicketClient(
            auth=BearerToken(token), hosts=fake.hosts, clock=fake.clock
        ) as client:
            with pytest.raises(NotFound) as raised:
                await client.reserve_ticket(shop.guid, "0" * 8 + "-0000-4000-8000-" + "0" * 12)

    copy = round_trip(raised.value, pickle.DEFAULT_PROTOCOL)

    assert isinstance(copy, NotFound)
    assert (copy.status, copy.method, copy.path) == (404, "GET", raised.value.path)
    assert copy.request_id is not None
    assert copy.request_id == raised.value.request_id
    assert token not in repr(vars(copy))
    assert str(copy) == str(raised.value)


@pytest.mark.asyncio
async def test_holds_not_ready_from_a_checkout_pickles_with_its_holds() -> None:
    clock = FakeClock()
    async with FakeOpenTicket(clock) as fake:
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop, stock=1)
        method = fake.add_payment_method(shop)
        async with (
            OpenTicketClient(
                auth=BearerToken(fake.issue_token().access_token),
                hosts=fake.hosts,
                clock=clock,
                retry=RetryPolicy(attempts=1),
            ) as client,
            ReservationManager(client, policy=HoldPolicy(renew_jitter=0)) as manager,
        ):
            cart = manager.cart(shop.guid, cart_id="c1")
            [hold] = await cart.add(ticket.guid, metadata={"seat": "A7"})
            fake.faults.status("reserve", 409, times=None)  # every renewal: sold out
            await clock.advance(timedelta(minutes=7, seconds=30))
            with pytest.raises(HoldsNotReady) as raised:
                await cart.checkout(
                    receiver=Receiver(email="a@example.com", firstname="A", lastname="B"),
                    payment_method=method.guid,
                    currency="EUR",
                )

    copy = round_trip(raised.value, pickle.DEFAULT_PROTOCOL)

    assert isinstance(copy, HoldsNotReady)
    assert str(copy) == str(raised.value)
    [copied] = copy.holds
    assert isinstance(copied, Hold)
    assert (copied.id, copied.cart_id, copied.ticket_guid) == (hold.id, "c1", ticket.guid)
    assert copied.state is hold.state
    assert copied.reservation == hold.reservation
    assert copied.metadata == {"seat": "A7"}


def test_a_model_pickles_with_its_raw_keys_still_read_only() -> None:
    product = Product(guid="p1", name="Entrance", raw=MappingProxyType({"price": "21"}))

    copy = pickle.loads(pickle.dumps(product))  # noqa: S301 (our own bytes)

    assert copy == product
    assert copy.raw == {"price": "21"}
    with pytest.raises(TypeError):
        copy.raw["price"] = "0"  # type: ignore[index]

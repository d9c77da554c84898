"""The public door: ``openticket_async.__all__`` is exactly the public names."""

from __future__ import annotations

import inspect

import openticket_async
import openticket_async.testing

CONTRACT = {  # DESIGN.md section 3: these names are what users program against
    "OpenTicketClient", "Hosts", "BearerToken", "OAuth2", "TokenSet", "RetryPolicy",
    "Timeouts", "Reservation", "Product", "PaymentMethod", "Order", "Receiver",
    "ReservationManager", "HoldPolicy", "Cart", "Hold", "HoldState", "Expiring",
    "Renewed", "RenewalFailed", "Lost", "Expired", "Released", "CheckedOut",
    "OpenTicketError", "TransportError", "APIError", "AuthenticationError", "NotFound",
    "TicketUnavailable", "RateLimited", "ServerError", "DecodeError", "InvalidArgument",
}  # fmt: skip


def test_all_is_sorted_and_unique() -> None:
    names = list(openticket_async.__all__)
    assert names == sorted(names, key=lambda n: (n.startswith("_"), n))
    assert len(names) == len(set(names))


def test_every_name_in_all_is_importable() -> None:
    for name in openticket_async.__all__:
        assert hasattr(openticket_async, name), name


def test_the_design_contract_is_exported() -> None:
    assert set(openticket_async.__all__) >= CONTRACT


def test_every_public_class_or_function_is_in_all() -> None:
    public = {
        name
        for name, value in vars(openticket_async).items()
        if not name.startswith("_") and (inspect.isclass(value) or inspect.isfunction(value))
    }
    assert public == set(openticket_async.__all__) - {"__version__"}


def test_testing_kit_exports_its_public_names() -> None:
    for name in ("FakeOpenTicket", "FakeClock", "ScaledClock"):
        assert name in openticket_async.testing.__all__
        assert hasattr(openticket_async.testing, name)

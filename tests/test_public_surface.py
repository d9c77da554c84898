"""The public surface: each public module's ``__all__``, written out name by name.

Users program against these names, so changing one (adding, renaming,
dropping) must be a visible decision: it fails here until this list is edited
in the same change, next to the CHANGELOG line that says why. Every listed
name must also import from the module that lists it, not only from where it
is defined.
"""

from __future__ import annotations

import importlib

import pytest

SURFACE: dict[str, list[str]] = {
    "openticket_async": [
        "APIError",
        "AtRisk",
        "AuthenticationError",
        "BearerToken",
        "Cart",
        "CheckedOut",
        "CheckoutInProgress",
        "Clock",
        "DecodeError",
        "EventStream",
        "Expired",
        "Expiring",
        "Hold",
        "HoldEvent",
        "HoldPolicy",
        "HoldState",
        "HoldsNotReady",
        "Hosts",
        "InvalidArgument",
        "Lingering",
        "Lost",
        "ManagerStats",
        "MemoryTokenStore",
        "NotFound",
        "OAuth2",
        "OpenTicketClient",
        "OpenTicketError",
        "Order",
        "OrderTicket",
        "PaymentMethod",
        "Product",
        "RateLimited",
        "Receiver",
        "Released",
        "RenewalFailed",
        "Renewed",
        "Reservation",
        "ReservationManager",
        "RetryPolicy",
        "ServerError",
        "StoreHealth",
        "StreamOverflow",
        "SystemClock",
        "Telemetry",
        "TicketUnavailable",
        "Timeouts",
        "TokenSet",
        "TokenStore",
        "TransportError",
        "UsageError",
        "User",
        "authorization_url",
        "exchange_code",
        "__version__",
    ],
    "openticket_async.testing": [
        "BusyProbe",
        "FakeClock",
        "FakeOpenTicket",
        "FakePaymentMethod",
        "FakeShop",
        "FakeTicket",
        "Faults",
        "OrderLine",
        "OrderRecord",
        "ROUTES",
        "RequestRecord",
        "ReservationRecord",
        "ScaledClock",
        "TokenGrant",
    ],
    "openticket_async.stores": [
        "CartClaim",
        "CartTaken",
        "Due",
        "EventSink",
        "MemoryStore",
        "MonitoredStore",
        "ReservationStore",
        "claim_lease",
    ],
    "openticket_async.stores.redis": [
        "CartEvent",
        "PacedClient",
        "RedisStore",
        "RedisTokenStore",
        "StoreUnavailable",
        "lease_for",
    ],
}

SURFACE_NAMES = [(module, name) for module, names in SURFACE.items() for name in names]


@pytest.mark.parametrize("module", list(SURFACE))
def test_all_is_exactly_the_listed_surface(module: str) -> None:
    assert list(importlib.import_module(module).__all__) == SURFACE[module]


@pytest.mark.parametrize(("module", "name"), SURFACE_NAMES)
def test_every_listed_name_imports_from_its_module(module: str, name: str) -> None:
    # `from <module> import <name>` succeeds exactly when the module has the attribute
    assert hasattr(importlib.import_module(module), name)

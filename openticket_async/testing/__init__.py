"""The openticket_async test kit: a fake OpenTicket API, clocks and pytest fixtures.

Everything a user needs to test their own code against OpenTicket without the
network or the wall clock::

    from openticket_async.testing import FakeClock, FakeOpenTicket

    clock = FakeClock()
    async with FakeOpenTicket(clock) as fake:     # without a clock: real time
        shop = fake.add_shop()
        ticket = fake.add_ticket(shop, stock=2)
        ...                                       # a client on fake.hosts and clock
        await clock.advance(8 * 60)               # every reservation drops

The pytest plugin (``openticket_fake``, ``openticket_client``,
``openticket_clock``) is registered automatically. See docs/testing.md.
"""

from ._clock import BusyProbe, FakeClock, ScaledClock
from ._faults import Faults
from ._routes import ROUTES
from ._server import FakeOpenTicket
from ._values import (
    FakePaymentMethod,
    FakeShop,
    FakeTicket,
    OrderLine,
    OrderRecord,
    RequestRecord,
    ReservationRecord,
    TokenGrant,
)

__all__ = [
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
]

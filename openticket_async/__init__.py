"""Async Python SDK for the OpenTicket ticketing API.

The public names are re-exported here; every module behind them is private.
"""

from ._clock import Clock, SystemClock
from ._config import HoldPolicy, RetryPolicy, Timeouts
from ._exceptions import (
    APIError,
    AuthenticationError,
    DecodeError,
    InvalidArgument,
    NotFound,
    OpenTicketError,
    RateLimited,
    ServerError,
    TicketUnavailable,
    TransportError,
    UsageError,
)
from ._models import (
    Hosts,
    Order,
    OrderTicket,
    PaymentMethod,
    Product,
    Receiver,
    Reservation,
    TokenSet,
    User,
)
from ._version import __version__

__all__ = [
    "APIError",
    "AuthenticationError",
    "Clock",
    "DecodeError",
    "HoldPolicy",
    "Hosts",
    "InvalidArgument",
    "NotFound",
    "OpenTicketError",
    "Order",
    "OrderTicket",
    "PaymentMethod",
    "Product",
    "RateLimited",
    "Receiver",
    "Reservation",
    "RetryPolicy",
    "ServerError",
    "SystemClock",
    "TicketUnavailable",
    "Timeouts",
    "TokenSet",
    "TransportError",
    "UsageError",
    "User",
    "__version__",
]

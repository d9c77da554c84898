"""Async Python SDK for the OpenTicket ticketing API.

The public names are re-exported here; every module behind them is private.
"""

from ._auth import BearerToken, MemoryTokenStore, OAuth2, TokenStore, authorization_url
from ._cart import Cart
from ._client import OpenTicketClient, exchange_code
from ._clock import Clock, SystemClock
from ._config import HoldPolicy, RetryPolicy, Timeouts
from ._events import (
    AtRisk,
    CheckedOut,
    EventStream,
    Expired,
    Expiring,
    HoldEvent,
    Lost,
    Released,
    RenewalFailed,
    Renewed,
    StreamOverflow,
)
from ._exceptions import (
    APIError,
    AuthenticationError,
    CheckoutInProgress,
    DecodeError,
    HoldsNotReady,
    InvalidArgument,
    NotFound,
    OpenTicketError,
    RateLimited,
    ServerError,
    TicketUnavailable,
    TransportError,
    UsageError,
)
from ._hold import Hold, HoldState
from ._lingering import Lingering
from ._manager import ReservationManager
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
from ._stats import ManagerStats, StoreHealth
from ._telemetry import Telemetry
from ._version import __version__

__all__ = [
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
]

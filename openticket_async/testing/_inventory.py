"""The fake server's shop state: shops, tickets with stock, reservations, orders.

Theory of operation: a ticket's stock is split into units *sold* (in an order),
units *held* (by a live reservation) and units *left*. A reservation is live while
``clock.now() < expires_at``; nothing runs when it drops. Instead each ticket keeps
its reservations in a deque in expiry order (the TTL is fixed and the clock never
goes back, so appending keeps it sorted), and every look at the ticket first pops
the expired ones off the front. That makes a reserve O(1) amortised however many
reservations exist, which the benchmarks need.

Invariants: ``sold + len(live) <= stock``; a reservation is in ``_index`` exactly
while it is in its ticket's ``live``; an ordered reservation is in neither.
"""

from __future__ import annotations

import itertools
import uuid
from collections import deque
from collections.abc import Mapping
from typing import Any

from .._clock import Clock
from .._exceptions import InvalidArgument
from ._values import (
    FakePaymentMethod,
    FakeShop,
    FakeTicket,
    OrderLine,
    OrderRecord,
    Refusal,
    ReservationRecord,
)

__all__ = ["Inventory", "LiveReservation"]


def new_guid() -> str:
    """A fresh canonical GUID."""
    return str(uuid.uuid4())


class LiveReservation:
    """A reservation as the server keeps it (mutable, slotted: there may be millions)."""

    __slots__ = ("expires_at", "guid", "ordered", "reserved_at", "stock")

    def __init__(self, guid: str, stock: _Stock, reserved_at: float, expires_at: float) -> None:
        self.guid = guid
        self.stock = stock
        self.reserved_at = reserved_at
        self.expires_at = expires_at
        self.ordered = False

    def record(self) -> ReservationRecord:
        """A frozen snapshot for inspection."""
        return ReservationRecord(
            guid=self.guid,
            ticket_guid=self.stock.ticket.guid,
            shop_guid=self.stock.ticket.shop_guid,
            reserved_at=self.reserved_at,
            expires_at=self.expires_at,
        )


class _Stock:
    __slots__ = ("by_expiry", "live", "product_names", "sold", "ticket", "total")

    def __init__(self, ticket: FakeTicket, total: int, product_names: tuple[str, ...]) -> None:
        self.ticket = ticket
        self.total = total
        self.product_names = product_names
        self.sold = 0
        self.live: dict[str, LiveReservation] = {}
        self.by_expiry: deque[LiveReservation] = deque()

    def prune(self, now: float, index: dict[str, LiveReservation]) -> None:
        by_expiry = self.by_expiry
        while by_expiry and by_expiry[0].expires_at <= now:
            dropped = by_expiry.popleft()
            if not dropped.ordered:
                del self.live[dropped.guid]
                del index[dropped.guid]

    def left(self) -> int:
        return self.total - self.sold - len(self.live)


class Inventory:
    """Shops, tickets, payment methods, reservations and orders, on one clock."""

    def __init__(self, clock: Clock, reservation_ttl: float) -> None:
        self._clock = clock
        self._ttl = reservation_ttl
        self._shops: dict[str, FakeShop] = {}
        self._stock: dict[str, _Stock] = {}
        self._methods: dict[str, list[FakePaymentMethod]] = {}
        self._index: dict[str, LiveReservation] = {}
        self._ordered: dict[str, str] = {}
        self._orders: dict[str, OrderRecord] = {}
        self._by_key: dict[str, OrderRecord] = {}
        self._ticket_numbers = itertools.count(1)

    # -- seeding ---------------------------------------------------------------

    def add_shop(self, name: str) -> FakeShop:
        """Create an empty shop."""
        shop = FakeShop(guid=new_guid(), name=name)
        self._shops[shop.guid] = shop
        self._methods[shop.guid] = []
        return shop

    def add_ticket(self, shop_guid: str, stock: int, name: str, products: int) -> FakeTicket:
        """Create a ticket with ``stock`` units and ``products`` products in a shop."""
        self._known_shop(shop_guid)
        if isinstance(stock, bool) or not isinstance(stock, int) or stock < 0:
            raise InvalidArgument(f"stock must be an int >= 0, got {stock!r}")
        if isinstance(products, bool) or not isinstance(products, int) or products < 0:
            raise InvalidArgument(f"products must be an int >= 0, got {products!r}")
        names = (
            ("Entrance",) if products == 1 else tuple(f"Product {i + 1}" for i in range(products))
        )
        ticket = FakeTicket(
            guid=new_guid(),
            shop_guid=shop_guid,
            name=name,
            event_date_guid=new_guid(),
            product_guids=tuple(new_guid() for _ in names),
        )
        self._stock[ticket.guid] = _Stock(ticket, stock, names)
        return ticket

    def add_payment_method(self, shop_guid: str, name: str) -> FakePaymentMethod:
        """Add a payment method to a shop."""
        self._known_shop(shop_guid)
        method = FakePaymentMethod(guid=new_guid(), name=name)
        self._methods[shop_guid].append(method)
        return method

    def _known_shop(self, shop_guid: str) -> None:
        if shop_guid not in self._shops:
            raise InvalidArgument(f"unknown shop {shop_guid!r}")

    # -- inspection ------------------------------------------------------------

    def stock_left(self, ticket_guid: str) -> int:
        """Units neither sold nor held by a live reservation."""
        stock = self._stock.get(ticket_guid)
        if stock is None:
            raise InvalidArgument(f"unknown ticket {ticket_guid!r}")
        stock.prune(self._clock.now(), self._index)
        return stock.left()

    def live_reservations(self, ticket_guid: str | None) -> list[ReservationRecord]:
        """Snapshots of the live reservations (of one ticket, or of all), oldest first."""
        if ticket_guid is None:
            stocks = list(self._stock.values())
        elif ticket_guid in self._stock:
            stocks = [self._stock[ticket_guid]]
        else:
            raise InvalidArgument(f"unknown ticket {ticket_guid!r}")
        now = self._clock.now()
        live: list[ReservationRecord] = []
        for stock in stocks:
            stock.prune(now, self._index)
            live.extend(reservation.record() for reservation in stock.live.values())
        live.sort(key=lambda record: record.reserved_at)
        return live

    @property
    def orders(self) -> list[OrderRecord]:
        """Every order created, oldest first."""
        return list(self._orders.values())

    # -- the API ---------------------------------------------------------------

    def reserve(self, shop_guid: str, ticket_guid: str) -> tuple[LiveReservation, tuple[str, ...]]:
        """Hold one unit for the TTL; return it with the ticket's product names.

        Refuses with 404 for an unknown shop or ticket, 409 ``sold_out`` when no
        unit is left.
        """
        stock = self._stock.get(ticket_guid)
        if shop_guid not in self._shops or stock is None or stock.ticket.shop_guid != shop_guid:
            raise Refusal(404, "not_found", "no such ticket in this shop")
        now = self._clock.now()
        stock.prune(now, self._index)
        if stock.left() <= 0:
            raise Refusal(409, "sold_out", "no stock left for this ticket", ticket_guid=ticket_guid)
        reservation = LiveReservation(new_guid(), stock, now, now + self._ttl)
        stock.live[reservation.guid] = reservation
        stock.by_expiry.append(reservation)
        self._index[reservation.guid] = reservation
        return reservation, stock.product_names

    def payment_methods(self, shop_guid: str) -> list[FakePaymentMethod]:
        """The shop's payment methods; 404 for an unknown shop."""
        methods = self._methods.get(shop_guid)
        if methods is None:
            raise Refusal(404, "not_found", "no such shop")
        return methods

    def order(self, order_guid: str) -> OrderRecord:
        """One order; 404 if unknown."""
        order = self._orders.get(order_guid)
        if order is None:
            raise Refusal(404, "not_found", "no such order")
        return order

    def create_order(self, shop_guid: str, body: Any, idempotency_key: str | None) -> OrderRecord:
        """Turn live reservations into an order, all or nothing.

        The same ``idempotency_key`` returns the first order again. Refuses with
        404 for an unknown shop, 422 ``invalid`` for a malformed body, 410
        ``reservation_expired`` when a reservation has dropped or was ordered.
        """
        if idempotency_key is not None and idempotency_key in self._by_key:
            return self._by_key[idempotency_key]
        if shop_guid not in self._shops:
            raise Refusal(404, "not_found", "no such shop")
        receiver, method, currency, lines = _parse_order(body)
        if method not in {m.guid for m in self._methods[shop_guid]}:
            raise Refusal(422, "invalid", "paymentProvider is not a payment method of this shop")
        taken = [self._claimable(shop_guid, line) for line in lines]
        if len({reservation.guid for reservation in taken}) != len(taken):
            raise Refusal(422, "invalid", "a reservation appears twice in the order")
        order_guid = new_guid()
        order_lines = []
        for reservation, line in zip(taken, lines, strict=True):
            stock = reservation.stock
            reservation.ordered = True
            del stock.live[reservation.guid]
            del self._index[reservation.guid]
            stock.sold += 1
            self._ordered[reservation.guid] = order_guid
            order_lines.append(
                OrderLine(
                    guid=new_guid(),
                    ticket_guid=stock.ticket.guid,
                    reservation_guid=reservation.guid,
                    ticket_number=f"{next(self._ticket_numbers):012d}",
                    product_guids=tuple(line.get("products") or stock.ticket.product_guids),
                )
            )
        order = OrderRecord(
            guid=order_guid,
            shop_guid=shop_guid,
            currency=currency,
            payment_method=method,
            receiver=receiver,
            lines=tuple(order_lines),
            idempotency_key=idempotency_key,
            created_at=self._clock.now(),
        )
        self._orders[order.guid] = order
        if idempotency_key is not None:
            self._by_key[idempotency_key] = order
        return order

    def _claimable(self, shop_guid: str, line: Mapping[str, Any]) -> LiveReservation:
        guid = line["reservation"]
        reservation = self._index.get(guid)
        if reservation is None or self._clock.now() >= reservation.expires_at:
            if guid in self._ordered:
                why = f"reservation {guid} is already in order {self._ordered[guid]}"
            elif reservation is not None:
                ago = self._clock.now() - reservation.expires_at
                why = f"reservation {guid} dropped {ago:.3f} s ago"
            else:
                why = f"reservation {guid} is unknown or has dropped"
            raise Refusal(410, "reservation_expired", why, reservation=guid)
        ticket = reservation.stock.ticket
        if ticket.guid != line["guid"] or ticket.shop_guid != shop_guid:
            raise Refusal(422, "invalid", f"reservation {guid} is not for ticket {line['guid']}")
        unknown = set(line.get("products") or ()) - set(ticket.product_guids)
        if unknown:
            raise Refusal(422, "invalid", f"products {sorted(unknown)} are not of this ticket")
        return reservation


def _parse_order(body: Any) -> tuple[dict[str, Any], str, str, list[Mapping[str, Any]]]:
    """Check the order body against the shape in docs/wire.md (422 ``invalid`` if off)."""
    if not isinstance(body, Mapping):
        raise Refusal(422, "invalid", "the order body must be a JSON object")
    receiver = body.get("receiver")
    if not isinstance(receiver, Mapping) or not all(
        isinstance(receiver.get(key), str) and receiver.get(key)
        for key in ("email", "firstname", "lastname")
    ):
        raise Refusal(422, "invalid", "receiver needs email, firstname and lastname")
    method = body.get("paymentProvider")
    currency = body.get("currency")
    if not isinstance(method, str) or not method:
        raise Refusal(422, "invalid", "paymentProvider is required")
    if not isinstance(currency, str) or not currency:
        raise Refusal(422, "invalid", "currency is required")
    tickets = body.get("tickets")
    if not isinstance(tickets, list) or not tickets:
        raise Refusal(422, "invalid", "tickets must be a non-empty list")
    for line in tickets:
        if not (
            isinstance(line, Mapping)
            and isinstance(line.get("guid"), str)
            and isinstance(line.get("reservation"), str)
            and isinstance(line.get("products", []), list)
            and all(isinstance(p, str) for p in line.get("products", []))
        ):
            raise Refusal(
                422, "invalid", "each ticket needs guid, reservation and a list of product guids"
            )
    return dict(receiver), method, currency, tickets

"""User code in the README's patterns, checked by ``mypy --strict`` (``make typecheck``).

Not collected by pytest: this file is for the type checker. It proves that the
public API types what a user writes: ``manager.on(Renewed, lambda event: ...)``
gives the lambda a ``Renewed``, not ``Any``; a cart, its holds, a checkout's order
and the errors' fields are typed. ``assert_type`` fails the check on any other
type, and each ``# type: ignore[...]`` below must be needed (``--strict`` warns
about unused ones), so a parameter typed ``Any`` would fail it too.
"""

from __future__ import annotations

from typing import assert_type

from openticket_async import (
    CheckedOut,
    Hold,
    HoldEvent,
    HoldsNotReady,
    Lost,
    OpenTicketClient,
    Order,
    RateLimited,
    Receiver,
    Renewed,
    Reservation,
    ReservationManager,
    TicketUnavailable,
    TransportError,
)


async def keep_a_cart(client: OpenTicketClient, shop: str, ticket: str, method: str) -> Order:
    async with ReservationManager(client) as manager:
        manager.on(Renewed, lambda event: print(assert_type(event, Renewed).new.guid))
        manager.on(Lost, lambda event: print(assert_type(event.reason, str)))
        manager.on(HoldEvent, lambda event: print(assert_type(event.hold, Hold).state))
        # a Renewed has no .reason: the lambda's parameter is not Any
        manager.on(Renewed, lambda event: print(event.reason))  # type: ignore[attr-defined]

        async def on_checked_out(event: CheckedOut) -> None:
            assert_type(event.order, Order)

        unsubscribe = manager.on(CheckedOut, on_checked_out)
        unsubscribe()

        async with manager.cart(shop) as cart:
            holds = await cart.add(ticket, quantity=2, metadata={"seat": "A7"})
            assert_type(holds, list[Hold])
            assert_type(holds[0].reservation, Reservation | None)
            try:
                order = await cart.checkout(
                    receiver=Receiver(email="ada@example.com", firstname="Ada", lastname="Lo"),
                    payment_method=method,
                    currency="EUR",
                    idempotency_key=f"cart-{cart.id}",
                )
            except HoldsNotReady as error:
                assert_type(error.holds, list[object])
                raise
            except TicketUnavailable as error:
                assert_type(error.status, int)
                raise
            except RateLimited as error:
                assert_type(error.retry_after, float | None)
                raise
            except TransportError as error:
                assert_type(error.may_have_reached_server, bool)
                raise
        return assert_type(order, Order)

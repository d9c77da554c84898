"""Run the fake OpenTicket server in its own process (for benchmarks and demos).

``python -m openticket_async.testing serve --port 0 --tickets 4 --stock 1000``
prints one JSON line (url, hosts, shop and ticket GUIDs, payment method, tokens)
and serves on the real clock until killed (SIGINT or SIGTERM). ``--uvloop`` runs
it on uvloop, which serves noticeably more requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence

from .._clock import SystemClock
from ._server import FakeOpenTicket


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {port}")
    return port


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m openticket_async.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a seeded fake OpenTicket API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=0, help="0 picks a free port")
    serve.add_argument("--tickets", type=int, default=1, help="tickets in the one shop")
    serve.add_argument("--stock", type=int, default=100, help="units per ticket")
    serve.add_argument("--ttl", type=float, default=480.0, help="reservation TTL (seconds)")
    serve.add_argument("--products", type=int, default=1, help="products per ticket")
    serve.add_argument("--style", choices=("snake", "camel"), default="snake")
    serve.add_argument(
        "--product-shape",
        choices=("lean", "flat", "nested"),
        default="lean",
        help="what each product line of a reserve answer carries besides guid and name",
    )
    serve.add_argument(
        "--no-expiry", action="store_true", help="answers leave out reserved_at/expires_at"
    )
    serve.add_argument("--uvloop", action="store_true", help="run on uvloop (if installed)")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> int:
    fake = FakeOpenTicket(
        SystemClock(),
        reservation_ttl=args.ttl,
        style=args.style,
        send_expiry=not args.no_expiry,
        product_shape=args.product_shape,
        record_requests=False,
    )
    shop = fake.add_shop()
    tickets = [
        fake.add_ticket(shop, stock=args.stock, products=args.products) for _ in range(args.tickets)
    ]
    method = fake.add_payment_method(shop)
    token = fake.issue_token()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        await fake.start(host=args.host, port=args.port)
    except OSError as error:  # the port is taken, the host is not ours, ...
        print(f"cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr, flush=True)
        return 1
    try:
        hosts = fake.hosts
        print(
            json.dumps(
                {
                    "url": fake.url,
                    "hosts": {"auth": hosts.auth, "api": hosts.api, "shop": hosts.shop},
                    "shop_guid": shop.guid,
                    "ticket_guids": [ticket.guid for ticket in tickets],
                    "payment_method_guid": method.guid,
                    # A throwaway token of this fake server: printing it is the point.
                    "access_token": token.access_token,
                    "refresh_token": token.refresh_token,
                    "client_id": "test-client",
                    "client_secret": "test-secret",
                }
            ),
            flush=True,
        )
        await stop.wait()
    finally:
        await fake.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m openticket_async.testing``; returns the exit status."""
    args = _parse(argv)
    with contextlib.suppress(KeyboardInterrupt):
        if args.uvloop:
            import uvloop

            return uvloop.run(_serve(args))
        return asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

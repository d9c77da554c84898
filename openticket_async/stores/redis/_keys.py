"""Where a RedisStore's keys live: the prefix, the shards and their hash tags.

Redis Cluster runs a script only when every key it touches lives in one hash
slot, and the slot of a key is the hash of its *hash tag* (the text between its
first ``{`` and the next ``}``) when it has one. So the store splits its state
into ``shards``: a cart, its holds, its checkout claim and its event stream all
live in the shard its id hashes to (CRC-32 of the id, modulo ``shards``), and
every shard has its own due queue, write counter, epoch and restore window. A
shard's keys all start with ``P{n}`` (``P`` the prefix, ``n`` the shard), one
slot per shard, and each script touches the keys of one shard only.

On a single Redis with one shard (the default there) nothing is tagged: the
keys are ``P queue``, ``P hold:<id>`` and so on, the layout the store always
had, so a deployment that upgrades keeps its data. The per-shop pace keys and
the token keys touch nothing else and stay untagged: each is a slot of its own.

Every worker on one prefix must use the same ``shards``: the shard of a cart is
computed, not stored. A store records its count under ``P{0}shards`` (or
``P shards``), again every half retention, and refuses to claim work when
another count is under either.
"""

from __future__ import annotations

import zlib

__all__ = ["MAX_SHARDS", "KeyLayout"]

#: The most shards a store may have (each claim runs one script per shard).
MAX_SHARDS = 256


class KeyLayout:
    """The key names of one store: ``prefix`` split into ``shards`` (tagged if ``tagged``)."""

    def __init__(self, prefix: str, shards: int, *, tagged: bool) -> None:
        self.prefix = prefix
        self.shards = shards
        self.tagged = tagged

    def shard_of(self, cart_id: str) -> int:
        """The shard of cart ``cart_id`` (and of its holds): the same in every process."""
        if self.shards == 1:
            return 0
        return zlib.crc32(cart_id.encode()) % self.shards

    def base(self, shard: int) -> str:
        """The start of every key of ``shard``: ``P{n}`` (or ``P`` untagged)."""
        return f"{self.prefix}{{{shard}}}" if self.tagged else self.prefix

    def queue(self, shard: int) -> str:
        """The shard's due queue (a sorted set)."""
        return self.base(shard) + "queue"

    def seq(self, shard: int) -> str:
        """The shard's write counter."""
        return self.base(shard) + "seq"

    def claim_keys(self, shard: int) -> list[str]:
        """The CLAIM script's keys for ``shard``: queue, epoch, restoring, seq."""
        base = self.base(shard)
        return [base + "queue", base + "epoch", base + "restoring", base + "seq"]

    def hold_prefix(self, shard: int) -> str:
        """The start of the hold keys of ``shard`` (the scripts append the id)."""
        return self.base(shard) + "hold:"

    def checkout_prefix(self, shard: int) -> str:
        """The start of the checkout-claim keys of ``shard``."""
        return self.base(shard) + "checkout:"

    def hold(self, cart_id: str, hold_id: str) -> str:
        """The hash of hold ``hold_id`` of cart ``cart_id``."""
        return self.hold_prefix(self.shard_of(cart_id)) + hold_id

    def write_keys(self, cart_id: str, hold_id: str) -> list[bytes]:
        """The SAVE and FORGET scripts' keys: hold, queue, cart, seq (all in the cart's shard).

        As bytes: redis-py packs each argument of a command in Python, and a str
        costs it several type checks more than bytes (together an eighth of a
        write-back's client CPU).
        """
        shard = self.shard_of(cart_id)
        return [self.hold(cart_id, hold_id).encode(), self.queue(shard).encode(),
                self.cart(cart_id).encode(), self.seq(shard).encode()]

    def cart(self, cart_id: str) -> str:
        """The sorted set of the cart's hold ids."""
        return self.base(self.shard_of(cart_id)) + "cart:" + cart_id

    def checkout(self, cart_id: str) -> str:
        """The cart's checkout claim."""
        return self.checkout_prefix(self.shard_of(cart_id)) + cart_id

    def events(self, cart_id: str) -> str:
        """The cart's event stream."""
        return self.base(self.shard_of(cart_id)) + "events:" + cart_id

    def marker(self) -> str:
        """Where the shard count is recorded (in shard 0)."""
        return self.base(0) + "shards"

    def markers(self, *, cluster: bool) -> list[str]:
        """Where any store on this prefix may record its count: this layout's first.

        On a single Redis one shard is untagged (``P shards``) and several are
        tagged (``P{0}shards``); on a cluster every key is tagged: one spelling.
        """
        own = self.marker()
        if cluster:
            return [own]
        other = KeyLayout(self.prefix, 1, tagged=not self.tagged).marker()
        return [own, other]

    def hold_glob(self) -> str:
        """A SCAN pattern matching every hold key of every shard (and nothing else of ours)."""
        escaped = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix)
        return escaped + ("{*}hold:*" if self.tagged else "hold:*")

    def hold_id(self, key: str) -> str | None:
        """The hold id of a hold key SCAN found (None if it is not one of this layout's)."""
        rest = key[len(self.prefix):]
        if self.tagged:
            _tag, sep, rest = rest.partition("}hold:")
            return rest if sep else None
        return rest[len("hold:"):] if rest.startswith("hold:") else None

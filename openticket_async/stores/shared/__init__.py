"""The parts of a shared store that do not depend on its backend (pure: no I/O).

A store that several processes share writes holds, events and tokens in a form
every process reads the same way (:mod:`._codec`: JSON, times as epoch
seconds), and keeps one local object per hold so claims and cart loads update
it in place (:mod:`._registry`). Neither module knows where the records live;
the backend's package does the I/O.
"""

from __future__ import annotations

from ._codec import (
    CartEvent,
    decode_event,
    decode_token,
    encode_event,
    encode_hold,
    encode_token,
)
from ._registry import LocalHolds

__all__ = [
    "CartEvent",
    "LocalHolds",
    "decode_event",
    "decode_token",
    "encode_event",
    "encode_hold",
    "encode_token",
]

"""Identifiers: short, time-sortable, URL-safe ids for runs and steps.

Ids are 16 characters of Crockford base32: 48 bits of milliseconds since the epoch
followed by 32 random bits, so listing by id is listing by creation time.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def new_id() -> str:
    """Return a new 16-character, time-ordered id (e.g. ``01jd6k2q3v8x9a7b``)."""
    value = (int(time.time() * 1000) << 32) | int.from_bytes(os.urandom(4), "big")
    chars = []
    for _ in range(16):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))

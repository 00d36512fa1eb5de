"""Time stamps: now in UTC, and stored times made UTC again.

SQLite gives ``DateTime(timezone=True)`` columns back without a time zone; every time
TwinEngine stores is UTC, so :func:`as_utc` puts the zone back before a value is shown
or compared with an aware one.
"""

from __future__ import annotations

import datetime as dt
from typing import TypeVar

T = TypeVar("T")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: T) -> T:
    """``value`` with UTC as its zone when it is a naive datetime; anything else as is."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)  # type: ignore[return-value]
    return value

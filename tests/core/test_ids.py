"""Ids: 16 characters of Crockford base32, unique, sortable by creation time."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest

from twinengine.core import ids as ids_module
from twinengine.core import new_id

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"


def decode(value: str) -> int:
    number = 0
    for char in value:
        number = number * 32 + CROCKFORD.index(char)
    return number


def test_shape() -> None:
    value = new_id()
    assert isinstance(value, str)
    assert len(value) == 16
    assert re.fullmatch(r"[0-9a-hjkmnp-tv-z]{16}", value)  # lower case, no i l o u


def test_many_ids_are_all_16_url_safe_characters() -> None:
    values = [new_id() for _ in range(2000)]
    assert {len(v) for v in values} == {16}
    assert set("".join(values)) <= set(CROCKFORD)


def test_unique() -> None:
    values = [new_id() for _ in range(20000)]  # many within the same millisecond
    assert len(set(values)) == len(values)


def test_prefix_is_the_creation_time_in_milliseconds() -> None:
    before = int(time.time() * 1000)
    value = new_id()
    after = int(time.time() * 1000)
    assert before <= decode(value) >> 32 <= after


def test_sortable_by_creation_time() -> None:
    values = []
    for _ in range(25):
        values.append(new_id())
        time.sleep(0.002)  # a new millisecond for each id
    assert sorted(values) == values


def test_time_wins_over_the_random_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """An id from a later millisecond sorts after, whatever its random bits are."""
    clock = SimpleNamespace(time=lambda: 1_700_000_000.000)
    monkeypatch.setattr(ids_module, "time", clock)
    monkeypatch.setattr(ids_module.os, "urandom", lambda n: b"\xff" * n)
    earlier = new_id()
    clock.time = lambda: 1_700_000_000.001
    monkeypatch.setattr(ids_module.os, "urandom", lambda n: b"\x00" * n)
    later = new_id()
    assert earlier < later
    assert decode(earlier) == (1_700_000_000_000 << 32) | 0xFFFFFFFF
    assert decode(later) == 1_700_000_000_001 << 32


@pytest.mark.parametrize(
    "seconds",
    [0.0, 1.0, 1_000_000_000.0, 1_700_000_000.5, 4_102_444_800.0, 9_999_999_999.999],
)
def test_order_across_the_range_of_dates(seconds: float, monkeypatch) -> None:
    """Fixed width: lexical order equals numeric order for any date up to year 2286."""
    monkeypatch.setattr(ids_module.os, "urandom", lambda n: b"\x00" * n)
    monkeypatch.setattr(ids_module, "time", SimpleNamespace(time=lambda: seconds))
    first = new_id()
    monkeypatch.setattr(ids_module, "time", SimpleNamespace(time=lambda: seconds + 0.002))
    second = new_id()
    assert len(first) == len(second) == 16
    assert first < second
    assert decode(first) >> 32 == int(seconds * 1000)

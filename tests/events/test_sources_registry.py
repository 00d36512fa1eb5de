"""Every built-in source kind resolves to its class, and every class checks its config."""

from __future__ import annotations

import pytest

from twinengine.core import ConfigError
from twinengine.events.base import BUILTIN_SOURCES, make_source, source_class


@pytest.mark.parametrize("kind", sorted(BUILTIN_SOURCES))
def test_builtin_kinds_resolve(kind: str) -> None:
    cls = source_class(kind)
    assert cls.kind == kind
    assert cls.__name__ == BUILTIN_SOURCES[kind].rsplit(":", 1)[1]
    assert cls.__module__ == BUILTIN_SOURCES[kind].split(":", 1)[0]


@pytest.mark.parametrize("kind", sorted(set(BUILTIN_SOURCES) - {"webhook"}))
def test_empty_config_names_the_missing_field(kind: str) -> None:
    with pytest.raises(ConfigError, match=rf"^source 'x' \({kind}\): .*'\w+'"):
        make_source("x", kind, {})


def test_unknown_option_type_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"source 'x' \(folder\): 'deletes' must be bool"):
        make_source("x", "folder", {"path": "/tmp", "deletes": "yes"})


def test_retry_until_stopped_backs_off_and_resets_after_a_success() -> None:
    """Failures wait `first`, twice that … at most `most`; a success resets the wait; a set
    stop event ends the loop."""
    import threading

    from twinengine.events.base import retry_until_stopped

    stop = threading.Event()
    outcomes = iter(["fail", "fail", "fail", "ok", "fail", "stop"])
    waits: list[float] = []

    def attempt() -> None:
        outcome = next(outcomes)
        if outcome == "stop":
            stop.set()
        elif outcome == "fail":
            raise ConnectionError("peer down")

    def failed(exc: Exception, delay: float) -> None:
        assert isinstance(exc, ConnectionError)
        waits.append(delay)

    retry_until_stopped(stop, attempt, failed, first=0.001, most=0.003)
    assert waits == [0.001, 0.002, 0.003, 0.001]

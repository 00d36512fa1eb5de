"""CronSource against the real clock: periodic ticks, a restart that does not repeat the
acknowledged tick, catching up after downtime (latest tick only, every tick, the cap),
a crash before the acknowledgement and bad config."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.events.conftest import Recorder, running
from twinengine.core import ConfigError
from twinengine.events.base import SourceState
from twinengine.events.sources.cron import MAX_CATCH_UP, CronSource

UTC = dt.UTC


def minute_floor(moment: dt.datetime) -> dt.datetime:
    return moment.replace(second=0, microsecond=0)


def test_every_ticks_and_restart(tmp_path: Path) -> None:
    state = SourceState(tmp_path, "clock")
    seen = Recorder()
    with running(CronSource("clock", {"every": 0.2}, state), seen):
        seen.wait_for(2)
    first, second = seen.events[:2]
    assert (first.key, first.kind) == ("every 0.2s", "tick")
    gap = dt.datetime.fromisoformat(second.version) - dt.datetime.fromisoformat(first.version)
    assert gap == dt.timedelta(milliseconds=200)
    assert first.data == {"scheduled": first.version}
    assert state.load()["last_tick"] == seen.events[-1].version

    again = Recorder()
    with running(CronSource("clock", {"every": 0.2}, state), again):
        again.wait_for(1)
    assert again.events[0].version > seen.events[-1].version  # nothing twice


@pytest.mark.parametrize("catch_up", [False, True])
def test_downtime(tmp_path: Path, catch_up: bool) -> None:
    state = SourceState(tmp_path, "clock")
    latest = minute_floor(dt.datetime.now(UTC))
    state.save({"last_tick": (latest - dt.timedelta(minutes=10)).isoformat()})
    config = {"schedule": "* * * * *", "catch_up": catch_up, "data": {"job": "hourly"}}
    seen = Recorder()
    with running(CronSource("clock", config, state), seen):
        seen.wait_for(10 if catch_up else 1)
    if catch_up:
        expected = [latest - dt.timedelta(minutes=n) for n in range(9, -1, -1)]
        assert [e.version for e in seen.events[:10]] == [t.isoformat() for t in expected]
    else:
        assert seen.events[0].version == latest.isoformat()
    assert seen.events[0].data == {"job": "hourly"}


def test_catch_up_is_capped(tmp_path: Path) -> None:
    state = SourceState(tmp_path, "clock")
    state.save({"last_tick": (dt.datetime.now(UTC) - dt.timedelta(days=1)).isoformat()})
    source = CronSource("clock", {"schedule": "* * * * *", "catch_up": True}, state)
    seen = Recorder()
    with running(source, seen):
        seen.wait_for(MAX_CATCH_UP)
    latest = minute_floor(dt.datetime.now(UTC))
    assert len(seen.events) >= MAX_CATCH_UP
    oldest = dt.datetime.fromisoformat(seen.events[0].version)
    assert latest - oldest <= dt.timedelta(minutes=MAX_CATCH_UP)


def test_timezone_schedule() -> None:
    source = CronSource("clock", {"schedule": "0 9 * * *", "timezone": "Europe/Amsterdam"})
    now = dt.datetime(2024, 7, 1, 12, 0, tzinfo=UTC)  # 14:00 in Amsterdam (summer time)
    [tick] = source.due(now - dt.timedelta(days=1), now)
    assert tick == dt.datetime(2024, 7, 1, 7, 0, tzinfo=UTC)


def test_crash_before_ack_redelivers(tmp_path: Path) -> None:
    state = SourceState(tmp_path, "clock")
    config = {"every": 0.2, "catch_up": True}
    crashing = Recorder(fail_on=1)
    with running(CronSource("clock", config, state), crashing) as job:
        job.wait_error()
    again = Recorder()
    with running(CronSource("clock", config, state), again):
        again.wait_for(1)
    assert crashing.failed is not None
    assert again.events[0].idempotency_key() == crashing.failed.idempotency_key()


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match=r"source 'clock' \(cron\): give either 'schedule'"):
        CronSource("clock", {})
    with pytest.raises(ConfigError, match="give either"):
        CronSource("clock", {"schedule": "* * * * *", "every": 5})
    with pytest.raises(ConfigError, match="'schedule' 'every day' is not a cron expression"):
        CronSource("clock", {"schedule": "every day"})
    with pytest.raises(ConfigError, match="'every' must be at least"):
        CronSource("clock", {"every": 0})
    with pytest.raises(ConfigError, match="'timezone' 'Mars/Olympus' is unknown"):
        CronSource("clock", {"every": 5, "timezone": "Mars/Olympus"})

"""A clock as an event source: a tick at each time of a cron ``schedule`` (croniter, in
``timezone``, default UTC) or ``every`` N seconds (ticks at multiples of N since the Unix
epoch, so they are the same across restarts).

The cursor is the last tick emitted (on the very first start, the last tick before it,
which is not emitted). After downtime the source emits only the latest missed tick, or
with ``catch_up: true`` every missed tick, the latest 100 at most. A tick's version is
its scheduled time as an ISO string, so a tick emitted twice is one event downstream.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from twinengine.core import ConfigError
from twinengine.events.base import Emit, EventSource, SourceState
from twinengine.events.sources.options import needs, number, text

MAX_CATCH_UP = 100
_UTC = dt.UTC


class CronSource(EventSource):
    """Ticks of a cron schedule or a fixed period."""

    kind = "cron"

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        super().__init__(name, config, state)
        self.schedule: str | None = text(self, "schedule", None)
        self.every: float | None = (
            number(self, "every", 0, minimum=0.001) if "every" in config else None
        )
        if (self.schedule is None) == (self.every is None):
            raise ConfigError(
                f"source {name!r} (cron): give either 'schedule' or 'every'",
                hint="schedule: '*/5 * * * *' (cron) or every: 300 (seconds)",
            )
        zone = self.option("timezone", "UTC", str)
        try:
            self.zone = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(
                f"source {name!r} (cron): 'timezone' {zone!r} is unknown",
                hint="an IANA name such as Europe/Amsterdam",
            ) from None
        if self.schedule is not None:
            needs(self, "croniter")
            from croniter import croniter

            if not croniter.is_valid(self.schedule):
                raise ConfigError(
                    f"source {name!r} (cron): 'schedule' {self.schedule!r} is not a cron "
                    "expression",
                    hint="five fields: minute hour day-of-month month day-of-week",
                )
        self.catch_up: bool = self.option("catch_up", False, bool)
        self.data: Any = self.config.get("data")
        self.key = self.schedule if self.schedule is not None else f"every {self.every:g}s"

    # the clock ----------------------------------------------------------------------
    def _latest(self, now: dt.datetime) -> dt.datetime:
        """The last tick at or before ``now``."""
        if self.every is not None:
            ticks = math.floor(now.timestamp() / self.every + 1e-9)
            return dt.datetime.fromtimestamp(ticks * self.every, _UTC)
        from croniter import croniter

        local = now.astimezone(self.zone) + dt.timedelta(microseconds=1)
        return croniter(self.schedule, local).get_prev(dt.datetime).astimezone(_UTC)

    def _before(self, tick: dt.datetime) -> dt.datetime:
        if self.every is not None:
            return dt.datetime.fromtimestamp(tick.timestamp() - self.every, _UTC)
        from croniter import croniter

        return croniter(self.schedule, tick.astimezone(self.zone)).get_prev(dt.datetime)

    def _after(self, tick: dt.datetime) -> dt.datetime:
        if self.every is not None:
            ticks = math.floor(tick.timestamp() / self.every + 1e-9) + 1
            return dt.datetime.fromtimestamp(ticks * self.every, _UTC)
        from croniter import croniter

        start = tick.astimezone(self.zone)
        return croniter(self.schedule, start).get_next(dt.datetime).astimezone(_UTC)

    def due(self, last: dt.datetime, now: dt.datetime) -> list[dt.datetime]:
        """Ticks after ``last`` up to ``now`` that are to be emitted, oldest first."""
        latest = self._latest(now)
        if latest <= last:
            return []
        if not self.catch_up:
            return [latest]
        ticks = [latest]
        while len(ticks) < MAX_CATCH_UP:
            earlier = self._before(ticks[-1]).astimezone(_UTC)
            if earlier <= last:
                break
            ticks.append(earlier)
        return ticks[::-1]

    # events -------------------------------------------------------------------------
    def run(self, emit: Emit, stop: threading.Event) -> None:
        saved = self.state.load()
        if saved.get("last_tick"):
            last = dt.datetime.fromisoformat(saved["last_tick"])
        else:  # first start: begin with the next tick, remember where we began
            last = self._latest(dt.datetime.now(_UTC))
            self.state.save({**saved, "last_tick": last.isoformat()})
        while not stop.is_set():
            ticks = self.due(last, dt.datetime.now(_UTC))
            for tick in ticks:
                if stop.is_set():
                    return
                scheduled = tick.isoformat()
                emit(
                    self.event(
                        self.key,
                        kind="tick",
                        version=scheduled,
                        metadata={"scheduled": scheduled},
                        data=self.data if self.data is not None else {"scheduled": scheduled},
                        time=tick,
                    )
                )
                last = tick
                self.state.save({**saved, "last_tick": scheduled})
            wait = (self._after(last) - dt.datetime.now(_UTC)).total_seconds()
            stop.wait(max(0.0, wait) + 0.001)

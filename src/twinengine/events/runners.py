"""The threads that run event sources inside ``twin serve``.

:class:`SourceRunner` runs one configured source and, when its peer is down, waits (1 s,
2 s … 60 s) and starts it again, writing its status (ok, retrying, down, passive) and
the last error for the CLI, API and UI — one failing source never stops the others.
:class:`RunsRunner` runs the built-in ``runs`` source (an event per run that ends).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from twinengine.events.base import (
    Event,
    SourceState,
    make_source,
    retry_until_stopped,
    run_once,
)
from twinengine.events.runsource import RunsSource

if TYPE_CHECKING:
    from twinengine.events.engine import EventEngine

log = logging.getLogger(__name__)


class SourceRunner(threading.Thread):
    """One source's thread: run it, and after a failure wait (1 s, 2 s … 60 s) and retry."""

    def __init__(self, engine: EventEngine, row: dict[str, Any]) -> None:
        super().__init__(name=f"twin-source-{row['name']}", daemon=True)
        self.engine, self.row = engine, row
        self.stop_event = threading.Event()

    def run(self) -> None:
        name = self.row["name"]
        state = SourceState(self.engine.state_folder, name)

        def emit(event: Event, project: str = self.row["project"]) -> None:
            self.engine.ingest(event, project)

        def attempt() -> None:
            source = make_source(name, self.row["kind"], self.row["config"], state)
            passive = getattr(source, "passive", False)
            self.engine.store.set_source_status(name, "passive" if passive else "ok")
            run_once(source, emit, self.stop_event)

        def failed(exc: Exception, delay: float) -> None:
            status = "retrying" if delay < 30 else "down"
            self.engine.store.set_source_status(name, status, f"{type(exc).__name__}: {exc}")
            log.warning("source %s failed (%s); retrying in %.0f s", name, exc, delay)

        retry_until_stopped(self.stop_event, attempt, failed)


class RunsRunner(SourceRunner):
    """The built-in ``runs`` source: an event per run that ended (workflows chaining)."""

    def run(self) -> None:
        source = RunsSource(self.engine.db, SourceState(self.engine.state_folder, "runs"))

        def failed(exc: Exception, delay: float) -> None:
            log.error("the runs source failed; retrying in %.0f s", delay, exc_info=exc)

        retry_until_stopped(
            self.stop_event,
            lambda: source.run(
                lambda e: self.engine.ingest(e, e.metadata.get("project")),
                self.stop_event,
            ),
            failed,
            first=2.0,
        )

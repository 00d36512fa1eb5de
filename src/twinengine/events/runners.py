"""The threads that run event sources inside ``twin serve``.

:class:`SourceRunner` runs one configured source and, when its peer is down, waits (1 s,
2 s … 60 s) and starts it again, writing its status (ok, retrying, down, passive) and
the last error for the CLI, API and UI — one failing source never stops the others. The
source gets its secrets opened; an error shown or logged, and an event's location, never
repeat them (they are scrubbed to ``***``).
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
from twinengine.events.sourcesecrets import scrub, secret_values
from twinengine.events.store import secret_keys

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
        name, project, store = self.row["name"], self.row["project"], self.engine.store
        state = SourceState.of(self.engine.state_folder, project, name)
        secrets: list[str] = []

        def emit(event: Event) -> None:
            if secrets and event.location:
                event.location = scrub(event.location, secrets)
            self.engine.ingest(event, project)

        def attempt() -> None:
            config = store.open_config(self.row)
            secrets[:] = secret_values(config, secret_keys(self.row["kind"]))
            source = make_source(name, self.row["kind"], config, state)
            passive = getattr(source, "passive", False)
            store.set_source_status(name, project, "passive" if passive else "ok")
            run_once(source, emit, self.stop_event)

        def failed(exc: Exception, delay: float) -> None:
            status = "retrying" if delay < 30 else "down"
            error = scrub(f"{type(exc).__name__}: {exc}", secrets)
            store.set_source_status(name, project, status, error)
            log.warning("source %s/%s failed (%s); retrying in %.0f s", project, name, error, delay)

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

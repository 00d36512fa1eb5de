"""The threads that run event sources inside ``twin serve``.

:class:`SourceRunner` runs one configured source and, when its peer is down, waits (1 s,
2 s … 60 s) and starts it again, writing its status (ok, retrying, down, passive) and
the last error for the CLI, API and UI — one failing source never stops the others. The
source gets its secrets opened; an error shown or logged, and an event's location, never
repeat them (they are scrubbed to ``***``). It is told which local files it may look at
(:meth:`~twinengine.events.base.EventSource.limit_paths`: inside ``watch_roots`` unless
an admin added it, never the server's own files); a source that finds itself out of
them (a folder swapped for a link) is ``down`` at once, with the reason. A source may
hand over a batch of events at once (:meth:`Emitter.many`, one transaction).
:class:`RunsRunner` runs the built-in ``runs`` source (an event per run that ends).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from twinengine.core import ForbiddenError
from twinengine.events.base import (
    Event,
    SourceState,
    make_source,
    retry_until_stopped,
    run_once,
)
from twinengine.events.folderbounds import FolderBounds
from twinengine.events.runsource import RunsSource
from twinengine.events.sourcesecrets import scrub, secret_values
from twinengine.events.store import secret_keys

if TYPE_CHECKING:
    from twinengine.events.engine import EventEngine

log = logging.getLogger(__name__)


class Emitter:
    """What a source's thread gives it as ``emit``: each event is stored durably before
    the call returns, its location without the source's secrets. ``many`` stores several
    at once (one transaction): a source that finds a batch ready may hand it over so."""

    def __init__(self, engine: EventEngine, project: str | None, secrets: list[str]) -> None:
        self.engine, self.project, self.secrets = engine, project, secrets

    def _scrubbed(self, event: Event) -> Event:
        if self.secrets and event.location:
            event.location = scrub(event.location, self.secrets)
        return event

    def __call__(self, event: Event) -> None:
        self.engine.ingest(self._scrubbed(event), self.project)

    def many(self, events: list[Event]) -> None:
        self.engine.ingest_many([self._scrubbed(e) for e in events], self.project)


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
        emit = Emitter(self.engine, project, secrets)

        def attempt() -> None:
            config = store.open_config(self.row)
            secrets[:] = secret_values(config, secret_keys(self.row["kind"]))
            source = make_source(name, self.row["kind"], config, state)
            bounds = FolderBounds.of(self.engine.settings, store.added_by_admin(self.row))
            source.limit_paths(bounds.roots, bounds.hidden)
            passive = getattr(source, "passive", False)
            store.set_source_status(name, project, "passive" if passive else "ok")
            run_once(source, emit, self.stop_event)

        def failed(exc: Exception, delay: float) -> None:
            down = delay >= 30 or isinstance(exc, ForbiddenError)  # out of bounds: at once
            status = "down" if down else "retrying"
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

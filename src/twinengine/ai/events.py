"""AI happenings as TwinEngine events and notifications: guard stops and serving alerts.

:func:`announce` records one happening of the AI module — ``guard`` (the loss-envelope
guard stopped a training run) or ``threshold`` (a deployment's metric crossed its
limit) — in two ways: an event of the built-in source ``ai`` in the durable event queue,
with a delivery for every trigger on that source in the project (so a trigger can start
a workflow, e.g. retrain or roll back, when it happens; ``twin serve`` runs it), and a
notification of the same kind (web UI inbox, e-mail, chat, webhooks per the project's
subscriptions). Both are records, never a reason to fail the caller: a failure is
logged and reported back.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("twinengine.ai")
SOURCE = "ai"  # reserved source name (see twinengine.events.store)


def emit_event(
    kind: str, key: str, data: dict[str, Any], project: str = "default", version: str | None = None
) -> str | None:
    """Queue an event of source ``ai``; its id (None: a repeat of the same key+version)."""
    from twinengine.core import get_database
    from twinengine.events.base import Event
    from twinengine.events.queue import EventQueue
    from twinengine.events.store import DefinitionStore

    db = get_database()
    store = DefinitionStore(db)
    wanted = [store.candidate(t) for t in store.triggers([project], source=SOURCE)]
    event = Event(SOURCE, key, kind=kind, version=version, data=data)
    event_id, _ = EventQueue(db).ingest(event, project, wanted)
    return event_id


def notify(kind: str, title: str, body: str, data: dict[str, Any], project: str) -> str:
    from twinengine.notify import Note, NotificationCenter

    center = NotificationCenter(workers=1)
    try:
        note_id = center.publish(
            Note(kind=kind, title=title, body=body, project=project, data=data)
        )
        center.flush()
        return note_id
    finally:
        center.close()


def announce(
    kind: str,
    key: str,
    title: str,
    body: str,
    data: dict[str, Any],
    project: str = "default",
    version: str | None = None,
) -> dict[str, str | None]:
    """Emit the event and publish the notification; what each produced or why not."""
    done: dict[str, str | None] = {}
    for what, call in (
        ("event", lambda: emit_event(kind, key, data, project, version)),
        ("notification", lambda: notify(kind, title, body, data, project)),
    ):
        try:
            done[what] = call()
        except Exception as exc:  # a record, never a reason to fail
            log.warning("the %s %s of %s was not recorded: %s", kind, what, key, exc)
            done[what] = None
    return done

"""The built-in ``runs`` source: one event per run that ends, so a trigger can start a
workflow when another one succeeds or fails (its outputs as inputs).

It reads the ``runs`` table (whoever ran them: ``twin serve``, the CLI, a trigger) for
runs that ended after its cursor; the event's key is the run id, its kind the final
state, its version the run's attempt (a resumed run that ends again is a new event), and
its data ``{run_id, state, workflow, workflow_id, name, outputs, project, created_by}``.
The event belongs to the run's project: only that project's triggers see it (a run of no
project, started with ``twin run``, is seen by admins' triggers only), and a trigger
never sees the end of a run it started itself unless it asks to (``created_by``).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from sqlalchemy import select

from twinengine.core.models import runs, workflows
from twinengine.events.base import Emit, Event, SourceState

_FINAL = ("succeeded", "failed", "cancelled")


class RunsSource:
    def __init__(self, db: Any, state: SourceState, interval: float = 0.5) -> None:
        self.db, self.state, self.interval = db, state, interval

    def run(self, emit: Emit, stop: threading.Event) -> None:
        cursor = self.state.load().get("ended_after")
        if cursor is None:  # first start: only runs that end from now on
            cursor = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat()
            self.state.save({"ended_after": cursor})
        while not stop.is_set():
            since = dt.datetime.fromisoformat(cursor)
            query = (
                select(
                    runs.c.id,
                    runs.c.state,
                    runs.c.name,
                    runs.c.outputs,
                    runs.c.project,
                    runs.c.workflow_id,
                    runs.c.attempt,
                    runs.c.ended_at,
                    runs.c.created_by,
                    workflows.c.name.label("wf"),
                )
                .outerjoin(workflows, workflows.c.id == runs.c.workflow_id)
                .where(runs.c.state.in_(_FINAL), runs.c.ended_at > since)
                .order_by(runs.c.ended_at)
                .limit(500)
            )
            with self.db.engine.connect() as conn:
                ended = list(conn.execute(query))
            try:
                for row in ended:
                    emit(self.event(row))
                    cursor = row.ended_at.replace(tzinfo=None).isoformat()
            finally:  # once per poll: a crash re-emits a few runs, which the queue dedups
                if ended:
                    self.state.save({"ended_after": cursor})
            if not ended:
                stop.wait(self.interval)

    @staticmethod
    def event(row: Any) -> Event:
        data = {
            "run_id": row.id,
            "state": row.state,
            "workflow": row.wf,
            "name": row.name,
            "workflow_id": row.workflow_id,
            "outputs": row.outputs,
            "project": row.project,
            "created_by": row.created_by,
        }
        return Event(
            source="runs",
            key=row.id,
            kind=row.state,
            version=str(row.attempt),
            data=data,
            metadata={"project": row.project},
        )

"""The run queue of ``twin serve``: the ``runs`` table, as the dispatcher changes it.

A queued run is a row in state ``queued`` with no process (``pid`` null). :class:`RunQueue`
writes every change the dispatcher makes to such rows, and only those: a
:class:`RunRequest` made into a row (its folder and job file written first), the rows
inserted in one statement (inside a caller's transaction when given), the oldest queued
rows read, one claimed for a process (only while it is still queued and unclaimed, so
a run cancelled or taken meanwhile is never started), one handed back to the queue,
a resumable run queued again, one cancelled before it started, and a run whose process
ended without recording its end made ``cancelled`` (when that was asked) or ``failed``.
Which process starts a run is the dispatcher's business
(:mod:`twinengine.workflows.dispatch`).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, insert, select, update

from twinengine.core import Database, State, new_id
from twinengine.core.models import runs

_INSERT_RUN = insert(runs)  # values as parameters: compiled once, not per run
_UNCLAIMED = (runs.c.state == "queued", runs.c.pid.is_(None))


@functools.lru_cache(maxsize=256)
def main_document(folder: str, main: str) -> str:
    """The path of a registered workflow's main document."""
    return str(Path(folder) / main)


@dataclass
class RunRequest:
    """A run to queue: a registered workflow, its resolved job, who asked, and the input
    object as the user wrote it (``given``, kept as the run's job order)."""

    workflow: dict[str, Any]
    job: dict[str, Any]
    created_by: str | None
    name: str | None = None
    cache: bool = False
    given: dict[str, Any] | None = None


class RunQueue:
    """Queued runs in the ``runs`` table of ``db``, their folders under ``runs_dir``."""

    def __init__(self, db: Database, runs_dir: str) -> None:
        self.db = db
        self.runs_dir = runs_dir

    def row_of(
        self, request: RunRequest, main: str, taken_by: tuple[int, str] | None = None
    ) -> dict[str, Any]:
        """The queued row of ``request`` (``main``: its main document), with its folder
        and job file made; ``taken_by``: ``(pid, host)`` of the process that runs it now
        (recorded as running in that process: ``options.inprocess``)."""
        run_id = new_id()
        run_dir = os.path.join(self.runs_dir, run_id)  # strings: this is per event
        try:
            os.mkdir(run_dir)
        except FileExistsError:
            pass
        except FileNotFoundError:  # no runs folder yet
            os.makedirs(run_dir, exist_ok=True)
        with open(os.path.join(run_dir, "job.json"), "w", encoding="utf-8") as out:
            out.write(json.dumps(request.job, indent=1))
        workflow = request.workflow
        options: dict[str, Any] = {"cache": request.cache, "dispatch": "serve"}
        values: dict[str, Any] = {"pid": None, "host": None}  # every row the same columns
        if taken_by is not None:
            options["inprocess"] = True
            values = {"pid": taken_by[0], "host": taken_by[1]}
        values.update(
            id=run_id,
            name=request.name or workflow["name"],
            workflow=main,
            job_order=request.job if request.given is None else request.given,
            state=State.QUEUED.value,
            created_at=dt.datetime.now(dt.UTC),
            outdir=os.path.join(run_dir, "outputs"),
            work_dir=run_dir,
            options=options,
            cancel_requested=False,
            attempt=1,
            project=workflow["project"],
            workflow_id=workflow["id"],
            created_by=request.created_by,
        )
        return values

    def insert(self, rows: list[dict[str, Any]], conn: Any = None) -> None:
        """Insert ``rows`` with one statement: in a transaction of its own, or inside
        the caller's ``conn`` (the caller commits)."""
        if conn is None:
            with self.db.engine.begin() as own:
                own.execute(_INSERT_RUN, rows)
        else:
            conn.execute(_INSERT_RUN, rows)

    def oldest(self, limit: int) -> list[Any]:
        """Up to ``limit`` queued, unclaimed runs, oldest first (id, started_at, options,
        workflow)."""
        with self.db.engine.connect() as conn:
            return list(
                conn.execute(
                    select(runs.c.id, runs.c.started_at, runs.c.options, runs.c.workflow)
                    .where(and_(*_UNCLAIMED))
                    .order_by(runs.c.created_at, runs.c.id)
                    .limit(limit)
                )
            )

    def length(self) -> int:
        """How many runs wait for a process."""
        with self.db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(*_UNCLAIMED)).scalar() or 0)

    def claim(self, run_id: str, pid: int, host: str, **values: Any) -> bool:
        """Record ``pid`` on ``host`` (and ``values``) as the run's process, if the run is
        still queued and unclaimed; whether it was."""
        with self.db.engine.begin() as conn:
            claimed = conn.execute(
                update(runs)
                .where(runs.c.id == run_id, *_UNCLAIMED)
                .values(pid=pid, host=host, **values)
            )
        return bool(claimed.rowcount)

    def hand_back(self, run_id: str) -> None:
        """A run worker could not take a run it was given: queued again, for a child
        process (``options.no_worker``)."""
        with self.db.engine.begin() as conn:
            row = conn.execute(select(runs.c.options).where(runs.c.id == run_id)).first()
            options = {**((row.options if row else None) or {}), "no_worker": True}
            options.pop("inprocess", None)
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.state == "queued")
                .values(pid=None, host=None, options=options)
            )

    def requeue(self, run_id: str) -> None:
        """Queue a reopened run again (no process, no end, no error)."""
        with self.db.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(
                    state=State.QUEUED.value,
                    pid=None,
                    host=None,
                    ended_at=None,
                    error=None,
                    exit_code=None,
                )
            )

    def cancel(self, run_id: str) -> bool:
        """Cancel a run that has not started yet; False when it already has a process."""
        with self.db.engine.begin() as conn:
            done = conn.execute(
                update(runs)
                .where(runs.c.id == run_id, *_UNCLAIMED)
                .values(
                    state=State.CANCELLED.value,
                    ended_at=dt.datetime.now(dt.UTC),
                    error="cancelled before it started",
                )
            )
        return bool(done.rowcount)

    def end_unrecorded(self, run_id: str, code: int, message: str, pid: int | None) -> None:
        """A run's process ended without recording the end of the run: ``cancelled`` if
        that was asked, else ``failed`` with ``message``. ``pid``: the process's; a run
        resumed since (queued again, or taken by a new process) is left alone."""
        unfinished = and_(
            runs.c.id == run_id,
            runs.c.state.in_(["queued", "running", "interrupted"]),
            runs.c.ended_at.is_(None),
            *([runs.c.pid == pid] if pid is not None else []),
        )
        now = dt.datetime.now(dt.UTC)
        with self.db.engine.begin() as conn:
            conn.execute(
                update(runs)
                .where(unfinished, runs.c.cancel_requested.is_(True))
                .values(state=State.CANCELLED.value, ended_at=now, error="cancelled")
            )
            conn.execute(
                update(runs)
                .where(unfinished)
                .values(state=State.FAILED.value, ended_at=now, exit_code=code or 1, error=message)
            )

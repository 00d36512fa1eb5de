"""Stored runs: list, show, logs, cancel and resume.

:class:`RunStore` is the query side of the run records written by
:class:`~twinengine.workflows.records.RunRecorder`. It also reconciles runs whose
driver process died (``kill -9``, a reboot): a run still marked ``running`` whose
process no longer exists on this host is shown as ``interrupted`` and can be resumed.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

from sqlalchemy import delete, func, select, update

from twinengine.core import (
    Database,
    NotFoundError,
    ObjectStore,
    State,
    StateError,
    TwinError,
    get_database,
    get_store,
)
from twinengine.core.models import runs, steps

_RESUMABLE = {State.INTERRUPTED.value, State.FAILED.value, State.CANCELLED.value}
#: runs whose process a dispatcher of this process watches: it records their end itself
#: (between a child's exit and that record, they must not be taken for interrupted)
WATCHED: set[str] = set()


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie or a recycled pid that is not a twin process does not count
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().split(b")")[-1].split()
            if fields[0] == b"Z":  # ended; unless it is our own child (twin serve's
                return int(fields[1]) == os.getpid()  # dispatcher records its end)
        return b"twin" in cmdline or b"python" in cmdline
    except OSError:
        return True


class RunStore:
    """Read and manage stored runs."""

    def __init__(self, db: Database | None = None, store: ObjectStore | None = None) -> None:
        self.db = db or get_database()
        self.store = store or get_store()

    def _reconcile(self, rows: list[Any]) -> list[dict[str, Any]]:
        """Rows as dicts; a queued/running run whose process is gone becomes interrupted.

        The row may be stale by the time its process is found gone (the run ended and
        its process exited in between), so the change is guarded by the state and pid
        read, and the runs it concerned are read again: a run that just succeeded is
        never reported as interrupted."""
        host = socket.gethostname()
        items = [dict(row._mapping) for row in rows]
        stale = [
            item
            for item in items
            if item["state"] in (State.RUNNING.value, State.QUEUED.value)
            and item["host"] == host
            and item["id"] not in WATCHED
            and not _pid_alive(item["pid"])
        ]
        if not stale:
            return items
        ids = [item["id"] for item in stale]
        with self.db.engine.begin() as conn:
            for item in stale:
                done = conn.execute(
                    update(runs)
                    .where(
                        runs.c.id == item["id"],
                        runs.c.pid == item["pid"],
                        runs.c.state.in_(["running", "queued"]),
                    )
                    .values(state=State.INTERRUPTED.value, error="the driver process ended")
                )
                if done.rowcount:
                    conn.execute(
                        update(steps)
                        .where(
                            steps.c.run_id == item["id"],
                            steps.c.state.in_(["running", "queued"]),
                        )
                        .values(state=State.INTERRUPTED.value)
                    )
            fresh = {
                r.id: dict(r._mapping) for r in conn.execute(select(runs).where(runs.c.id.in_(ids)))
            }
        return [fresh.get(item["id"], item) for item in items]

    def list(
        self, *, state: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[dict[str, Any]]:
        return self.page(state=state, limit=limit, offset=offset)[0]

    def page(
        self,
        *,
        projects: list[str] | None = None,
        state: str | None = None,
        workflow_id: str | None = None,
        q: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """``(runs, total)`` newest first, filtered; ``projects=None`` means all runs."""
        query = select(runs)
        if state is not None and state not in {s.value for s in State}:
            raise TwinError(
                f"unknown state {state!r}", hint="one of: " + ", ".join(s.value for s in State)
            )
        if state:
            query = query.where(runs.c.state == state)
        if projects is not None:
            query = query.where(runs.c.project.in_(projects))
        if workflow_id:
            query = query.where(runs.c.workflow_id == workflow_id)
        if q:
            query = query.where(runs.c.name.ilike(f"%{q}%") | runs.c.id.like(f"{q}%"))
        with self.db.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(query.subquery())).scalar()
            rows = list(
                conn.execute(
                    query.order_by(runs.c.created_at.desc(), runs.c.id.desc())
                    .limit(limit)
                    .offset(offset)
                )
            )
        items = self._reconcile(rows)
        counts = self.step_counts([i["id"] for i in items])
        for item in items:
            item["steps"] = counts.get(item["id"], {})
        return items, int(total or 0)

    def resolve_id(self, run_id: str) -> str:
        """Accept a full id or a unique prefix of one."""
        with self.db.engine.connect() as conn:
            if conn.execute(select(runs.c.id).where(runs.c.id == run_id)).first():
                return run_id
            matches = list(
                conn.execute(select(runs.c.id).where(runs.c.id.like(f"{run_id}%")).limit(2))
            )
        if len(matches) == 1:
            return matches[0].id
        if not matches:
            raise NotFoundError(
                f"no run with id {run_id!r}", hint="`twin runs list` shows the stored runs"
            )
        raise NotFoundError(f"{run_id!r} matches several runs; give more of the id")

    def get(self, run_id: str) -> dict[str, Any]:
        run_id = self.resolve_id(run_id)
        with self.db.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        return self._reconcile([row])[0]

    def steps(self, run_id: str) -> list[dict[str, Any]]:
        run_id = self.resolve_id(run_id)
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(steps)
                .where(steps.c.run_id == run_id)
                .order_by(steps.c.created_at, steps.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def step_counts(self, run_ids: list[str]) -> dict[str, dict[str, int]]:
        if not run_ids:
            return {}
        query = (
            select(steps.c.run_id, steps.c.state, func.count())
            .where(steps.c.run_id.in_(run_ids))
            .group_by(steps.c.run_id, steps.c.state)
        )
        out: dict[str, dict[str, int]] = {}
        with self.db.engine.connect() as conn:
            for run_id, state, count in conn.execute(query):
                out.setdefault(run_id, {})[state] = count
        return out

    def find_step(self, run_id: str, name_or_id: str) -> dict[str, Any]:
        candidates = self.steps(run_id)
        for step in candidates:
            if name_or_id in (step["id"], step["name"]):
                return step
        matches = [s for s in candidates if s["name"].endswith("/" + name_or_id)]
        if matches:
            return matches[-1]
        raise NotFoundError(
            f"run {run_id} has no step {name_or_id!r}",
            hint="`twin runs show RUN_ID` lists its steps",
        )

    def logs(self, run_id: str, step: str | None = None, stream: str = "stderr") -> str:
        """Text of a step's stdout or stderr (all steps, headed by name, when None)."""
        selected = [self.find_step(run_id, step)] if step else self.steps(run_id)
        parts = []
        for item in selected:
            uri = item.get(f"{stream}_uri")
            text = self.store.tail(uri, 1 << 20) if uri else ""
            if step:
                return text
            if text:
                parts.append(f"==> {item['name']} ({stream}) <==\n{text.rstrip()}\n")
        return "\n".join(parts)

    def cancel(self, run_id: str) -> dict[str, Any]:
        run = self.get(run_id)
        if State(run["state"]).finished or run["state"] == State.INTERRUPTED.value:
            raise StateError(f"run {run['id']} is already {run['state']}; nothing to cancel")
        with self.db.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run["id"]).values(cancel_requested=True))
        inprocess = (run.get("options") or {}).get("inprocess")  # on a server's thread
        if not inprocess and run["host"] == socket.gethostname() and _pid_alive(run["pid"]):
            try:
                os.kill(run["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
        return run

    def check_resumable(self, run_id: str) -> dict[str, Any]:
        run = self.get(run_id)
        if run["state"] == State.SUCCEEDED.value:
            raise StateError(f"run {run['id']} already succeeded; there is nothing to resume")
        if run["state"] not in _RESUMABLE:
            raise StateError(
                f"run {run['id']} is {run['state']}; only interrupted, failed or cancelled "
                "runs can be resumed",
                hint="cancel it first with `twin runs cancel`"
                if run["state"] == "running"
                else None,
            )
        return run

    def reopen(self, run_id: str) -> dict[str, Any]:
        """Check that a run can be resumed and forget an earlier cancel request (a cancel
        that arrives once the resumed run is starting must not be forgotten, so the run
        itself never clears it)."""
        run = self.check_resumable(run_id)
        with self.db.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run["id"]).values(cancel_requested=False))
        run["cancel_requested"] = False
        return run

    def delete(self, run_id: str) -> None:
        run = self.get(run_id)
        if run["state"] in (State.RUNNING.value, State.QUEUED.value):
            raise StateError(f"run {run['id']} is {run['state']}; cancel it before deleting it")
        with self.db.engine.begin() as conn:
            conn.execute(delete(steps).where(steps.c.run_id == run["id"]))
            conn.execute(delete(runs).where(runs.c.id == run["id"]))

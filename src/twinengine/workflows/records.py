"""Persistent run records: the run row and its step rows, written in batches.

:class:`RunRecorder` is what the scheduler talks to while a run executes. Run-level
changes (started, finished, failed) are written at once; step changes are buffered and
flushed together at most every ``flush_interval`` seconds (and at the end), so a
1000-way scatter costs a handful of transactions, not thousands. A crash loses at most
the last interval of step updates, and those steps are simply run again on resume.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import time
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from twinengine.core import Database, State, new_id
from twinengine.core.models import runs, steps

_STEP_COLUMNS = [c.name for c in steps.columns]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def from_epoch(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def state_of(status: str, *, cancelled: bool = False) -> State:
    """The stored state for a CWL process status ("success", "permanentFail" …)."""
    if status == "success":
        return State.SUCCEEDED
    if cancelled or status == "cancelled":
        return State.CANCELLED
    return State.FAILED


def jsonable(value: Any) -> Any:
    """A JSON-safe deep copy of a CWL object (ruamel maps, bytes … become plain)."""
    return json.loads(json.dumps(value, default=str))


class RunRecorder:
    """Writes one run and its steps to the metadata database."""

    def __init__(self, db: Database, run_id: str, flush_interval: float = 0.25) -> None:
        self.db = db
        self.run_id = run_id
        self.flush_interval = flush_interval
        self._pending: dict[str, dict[str, Any]] = {}
        self._inserted: set[str] = set()
        self._last_flush = time.monotonic()

    # -- run rows -----------------------------------------------------------------
    @classmethod
    def create_run(
        cls,
        db: Database,
        *,
        name: str,
        workflow: str,
        workflow_hash: str | None,
        job_order: Any,
        outdir: str | None,
        work_dir: str,
        executor: str,
        options: dict[str, Any],
        run_id: str | None = None,
    ) -> RunRecorder:
        run_id = run_id or new_id()
        with db.engine.begin() as conn:
            conn.execute(
                insert(runs).values(
                    id=run_id,
                    name=name,
                    workflow=workflow,
                    workflow_hash=workflow_hash,
                    job_order=jsonable(job_order),
                    state=State.QUEUED.value,
                    created_at=utcnow(),
                    outdir=outdir,
                    work_dir=work_dir,
                    executor=executor,
                    options=jsonable(options),
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    cancel_requested=False,
                    attempt=1,
                )
            )
        return cls(db, run_id)

    def update_run(self, **values: Any) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == self.run_id).values(**values))

    def run_started(self, inputs: Any, resumed: bool) -> None:
        values: dict[str, Any] = {
            "state": State.RUNNING.value,
            "inputs": jsonable(inputs),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "cancel_requested": False,
            "ended_at": None,
            "error": None,
        }
        if resumed:
            values["attempt"] = runs.c.attempt + 1
        else:
            values["started_at"] = utcnow()
        self.update_run(**values)

    def run_finished(
        self, state: State, outputs: Any = None, error: str | None = None, exit_code: int = 0
    ) -> None:
        self.flush()
        self.update_run(
            state=state.value,
            outputs=jsonable(outputs) if outputs is not None else None,
            ended_at=utcnow(),
            error=error,
            exit_code=exit_code,
        )

    def cancel_requested(self) -> bool:
        with self.db.engine.connect() as conn:
            return bool(
                conn.execute(
                    select(runs.c.cancel_requested).where(runs.c.id == self.run_id)
                ).scalar()
            )

    # -- step rows ----------------------------------------------------------------
    def step(self, step_id: str, **values: Any) -> None:
        """Record new values for a step (buffered)."""
        row = self._pending.get(step_id)
        if row is None:
            row = self._pending[step_id] = {"id": step_id}
        row.update(values)  # written by maybe_flush(), which the scheduler loop calls

    def maybe_flush(self) -> None:
        if self._pending and time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        new_rows, updates = [], []
        for step_id, row in pending.items():
            if step_id in self._inserted:
                updates.append(row)
            else:
                full = dict.fromkeys(_STEP_COLUMNS)
                full.update(row)
                full["run_id"] = self.run_id
                full["attempt"] = full["attempt"] or 1
                new_rows.append(full)
        with self.db.engine.begin() as conn:
            if new_rows:
                conn.execute(insert(steps), new_rows)
                self._inserted.update(r["id"] for r in new_rows)
            # group updates by the set of columns they change (executemany needs one shape)
            shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in updates:
                cols = tuple(sorted(k for k in row if k != "id"))
                shapes.setdefault(cols, []).append(row)
            for cols, rows in shapes.items():
                if not cols:
                    continue
                stmt = (
                    update(steps)
                    .where(steps.c.id == bindparam("_id"))
                    .values({c: bindparam(c) for c in cols})
                )
                conn.execute(stmt, [{"_id": r["id"], **{c: r[c] for c in cols}} for r in rows])

    def adopt_existing_steps(self) -> None:
        """Mark the steps already stored for this run as inserted (used on resume)."""
        with self.db.engine.connect() as conn:
            self._inserted.update(
                conn.execute(select(steps.c.id).where(steps.c.run_id == self.run_id)).scalars()
            )

    def reusable_steps(self) -> dict[str, dict[str, Any]]:
        """Succeeded step executions of this run by cache key: ``{key: {id, outputs}}``."""
        query = select(steps.c.id, steps.c.cache_key, steps.c.outputs).where(
            steps.c.run_id == self.run_id,
            steps.c.state == State.SUCCEEDED.value,
            steps.c.cache_key.is_not(None),
        )
        with self.db.engine.connect() as conn:
            return {
                row.cache_key: {"id": row.id, "outputs": row.outputs} for row in conn.execute(query)
            }

    def lookup_cache(self, cache_key: str) -> dict[str, Any] | None:
        """The newest succeeded step (any run) with ``cache_key``, or None."""
        query = (
            select(steps.c.id, steps.c.outputs)
            .where(steps.c.cache_key == cache_key, steps.c.state == State.SUCCEEDED.value)
            .order_by(steps.c.ended_at.desc())
            .limit(1)
        )
        with self.db.engine.connect() as conn:
            row = conn.execute(query).first()
        return {"id": row.id, "outputs": row.outputs} if row else None

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

from twinengine.core import State, new_id
from twinengine.core.columns import STEP_COLUMNS
from twinengine.core.times import utcnow
from twinengine.workflows.recordstore import RecordStore


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
    """Writes one run and its steps to the metadata database (through a RecordStore)."""

    def __init__(self, store: RecordStore, run_id: str, flush_interval: float = 0.25) -> None:
        self.store = store
        self.run_id = run_id
        self.flush_interval = flush_interval
        self._pending: dict[str, dict[str, Any]] = {}
        self._inserted: set[str] = set()
        self._last_flush = time.monotonic()

    # -- run rows -----------------------------------------------------------------
    @classmethod
    def create_run(
        cls,
        store: RecordStore,
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
        store.insert_run(
            {
                "id": run_id,
                "name": name,
                "workflow": workflow,
                "workflow_hash": workflow_hash,
                "job_order": jsonable(job_order),
                "state": State.QUEUED.value,
                "created_at": utcnow(),
                "outdir": outdir,
                "work_dir": work_dir,
                "executor": executor,
                "options": jsonable(options),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "cancel_requested": False,
                "attempt": 1,
            }
        )
        return cls(store, run_id)

    def update_run(self, bump_attempt: bool = False, **values: Any) -> None:
        self.store.update_run(self.run_id, values, bump_attempt)

    def run_started(self, inputs: Any, resumed: bool, **more: Any) -> None:
        """The run is running (``more``: other run fields to write in the same update)."""
        values: dict[str, Any] = {
            **more,
            "state": State.RUNNING.value,
            "inputs": jsonable(inputs),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "ended_at": None,
            "error": None,
        }
        if not resumed:
            values["started_at"] = utcnow()
        self.update_run(bump_attempt=resumed, **values)

    def run_finished(
        self, state: State, outputs: Any = None, error: str | None = None, exit_code: int = 0
    ) -> None:
        """The run ended: its last step changes and its end, in one transaction."""
        values = {
            "state": state.value,
            "outputs": jsonable(outputs) if outputs is not None else None,
            "ended_at": utcnow(),
            "error": error,
            "exit_code": exit_code,
        }
        self.flush(run=values)

    def cancel_requested(self) -> bool:
        return self.store.cancel_requested(self.run_id)

    # -- step rows ----------------------------------------------------------------
    def step(self, step_id: str, **values: Any) -> None:
        """Record new values for a step (buffered)."""
        row = self._pending.get(step_id)
        if row is None:
            row = self._pending[step_id] = {"id": step_id}
        row.update(values)  # written by maybe_flush(), which the scheduler loop calls

    def maybe_flush(self) -> None:
        if self._pending and time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush(final=False)

    def flush(self, final: bool = True, run: dict[str, Any] | None = None) -> None:
        """Write the buffered step changes (and ``run``'s values on the run, with them).

        Between batches (``final=False``) a step that is still only queued is kept back
        until it starts: a 1000-way scatter would otherwise insert a thousand queued
        rows and update each of them a moment later.
        """
        self._last_flush = time.monotonic()
        if not self._pending:
            if run is not None:
                self.update_run(**run)
            return
        pending, self._pending = self._pending, {}
        new_rows, updates = [], []
        for step_id, row in pending.items():
            if step_id in self._inserted:
                updates.append(row)
            elif not final and row.get("state") == "queued":
                self._pending[step_id] = row
            else:
                full = dict.fromkeys(STEP_COLUMNS)
                full.update(row)
                full["run_id"] = self.run_id
                full["attempt"] = full["attempt"] or 1
                new_rows.append(full)
        if new_rows or updates or run is not None:
            self.store.write_steps(new_rows, updates, None if run is None else (self.run_id, run))
            self._inserted.update(r["id"] for r in new_rows)

    def adopt_existing_steps(self) -> None:
        """Mark the steps already stored for this run as inserted (used on resume)."""
        self._inserted.update(self.store.step_ids(self.run_id))

    def reusable_steps(self) -> dict[str, dict[str, Any]]:
        """Succeeded step executions of this run by cache key: ``{key: {id, outputs}}``."""
        return self.store.succeeded_steps(self.run_id)

    def lookup_cache(self, cache_key: str) -> dict[str, Any] | None:
        """The newest succeeded step (any run) with ``cache_key``, or None."""
        return self.store.lookup_cache(cache_key)

"""Running functions: one pool per deployed function and a row per call.

:class:`FunctionService` owns the :class:`~twinengine.events.function_pool.FunctionPool`
of every deployed function, keyed by (project, name) — two projects' ``clean`` run their
own code in their own pools —, started lazily on the first call and replaced when the
definition changed (a redeploy, also one made by another process); it records every
call in ``function_calls`` with its function's project (``queued → running → succeeded |
failed``, with input, result, error, logs and times). A name without a project is found
in the one project that has it. :meth:`~FunctionService.invoke` waits for the result;
:meth:`~FunctionService.submit` queues the call and returns its id, to poll with
:meth:`~FunctionService.call`. :func:`run_function` is the plain form the trigger
engine uses for pre-processing: the result, or :class:`FunctionFailedError`. The
server's service has the server's sandbox: its pools start every worker in it.
"""

from __future__ import annotations

import json
import threading
import weakref
from concurrent.futures import Future
from typing import Any

from sqlalchemy import insert, select, update

from twinengine.core import (
    Database,
    InvalidInputError,
    NotFoundError,
    Settings,
    StateError,
    get_database,
    new_id,
)
from twinengine.core.models import function_calls
from twinengine.core.times import as_utc, utcnow
from twinengine.events.function_pool import FunctionPool
from twinengine.events.function_sandbox import FunctionSandbox
from twinengine.events.function_spec import MAX_TIMEOUT, FunctionFailedError
from twinengine.events.functions import FunctionRegistry
from twinengine.workflows.sandbox import Sandbox

__all__ = ["FunctionService", "run_function"]


def _shutdown_pools(pools: dict[tuple[str, str], FunctionPool]) -> None:
    for pool in list(pools.values()):
        pool.shutdown()
    pools.clear()


class FunctionService:
    """Deploy, invoke and observe functions; owns their worker pools."""

    def __init__(
        self,
        db: Database | None = None,
        settings: Settings | None = None,
        *,
        idle_seconds: float = 30.0,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.db = db or get_database(settings)
        self.settings = settings
        # twin serve's: every worker runs in it, every definition is checked in it
        roots = tuple(str(r) for r in (settings.input_roots if settings else ()))
        self.sandbox = FunctionSandbox(sandbox, roots) if sandbox is not None else None
        self.registry = FunctionRegistry(self.db, self.sandbox)
        self.idle_seconds = idle_seconds
        self._pools: dict[tuple[str, str], FunctionPool] = {}  # by (project, name)
        self._lock = threading.Lock()
        # the workers go when the service does, or at the latest when the interpreter exits
        self._finalizer = weakref.finalize(self, _shutdown_pools, self._pools)

    # -- definitions ---------------------------------------------------------------------
    def deploy(self, name: str, kind: str, target: Any, project: str = "default", **options: Any):
        """Deploy (or redeploy) a function; see :meth:`FunctionRegistry.deploy`."""
        definition = self.registry.deploy(name, kind, target, project, **options)
        self._drop((project, name))  # the next call starts a pool with the new definition
        return definition

    def get(
        self, name: str, project: str | None = None, within: list[str] | None = None
    ) -> dict[str, Any]:
        """The definition of ``name`` in ``project`` (or in the one of ``within`` — None:
        any — that has it); see :meth:`FunctionRegistry.row`."""
        return self.registry.get(name, project, within)

    def list(self, projects: list[str] | None = None) -> list[dict[str, Any]]:
        return self.registry.list(projects)

    def delete(self, name: str, project: str | None = None) -> str:
        """Remove a function, its calls' records and its workers; the project it was in."""
        project = self.registry.delete(name, project)
        self._drop((project, name))
        return project

    def pool(self, name: str, project: str | None = None) -> FunctionPool:
        """The running pool of ``name`` of ``project`` (started, or restarted after a
        redeploy); each project's function has its own."""
        spec = self.registry.spec(name, project)
        key = (spec.project, name)
        with self._lock:
            pool = self._pools.get(key)
            same = pool is not None and pool.spec.fingerprint() == spec.fingerprint()
            if pool is not None and same and not pool.closed:
                return pool
            old = self._pools.pop(key, None)
            pool = FunctionPool(
                spec, self, idle_seconds=self.idle_seconds, sandbox=self.sandbox
            ).start()
            self._pools[key] = pool
        if old is not None:
            old.shutdown()
        return pool

    def stats(self, name: str, project: str = "default") -> dict[str, Any]:
        """The pool's workers, busy workers and queued calls (zeros when not started)."""
        pool = self._pools.get((project, name))
        if pool is None or pool.closed:
            return {"workers": 0, "busy": 0, "queued": 0, "pids": []}
        return pool.stats()

    def _drop(self, key: tuple[str, str]) -> None:
        with self._lock:
            pool = self._pools.pop(key, None)
        if pool is not None:
            pool.shutdown()

    # -- calls -----------------------------------------------------------------------------
    def submit(
        self, name: str, value: Any, timeout: float | None = None, project: str | None = None
    ) -> str:
        """Queue a call (asynchronous invocation); its id, to poll with :meth:`call`."""
        return self.enqueue(name, value, timeout, project)[0]

    def invoke(
        self, name: str, value: Any, timeout: float | None = None, project: str | None = None
    ) -> dict[str, Any]:
        """Call ``name`` with ``value`` and wait: the finished call (see :meth:`call`)."""
        call_id, future = self.enqueue(name, value, timeout, project)
        future.result()
        return self.call(call_id)

    def enqueue(
        self, name: str, value: Any, timeout: float | None = None, project: str | None = None
    ) -> tuple[str, Future]:
        """Queue a call: its id and a future resolved (with the outcome) once its row is
        final — for callers that wait without holding a thread (``asyncio.wrap_future``).
        ``project``: whose function ``name`` is called — only that project's definition
        runs it, in that project's pool (None: the one project that has the name)."""
        _check_input(value)
        if timeout is not None and not 0 < timeout <= MAX_TIMEOUT:
            raise InvalidInputError(
                f"invalid timeout {timeout!r}", hint=f"seconds, > 0 and <= {MAX_TIMEOUT:g}"
            )
        pool = self.pool(name, project)
        project = pool.spec.project
        call_id = new_id()
        with self.db.engine.begin() as conn:
            conn.execute(
                insert(function_calls).values(
                    id=call_id,
                    function=name,
                    project=project,
                    state="queued",
                    input=value,
                    created_at=utcnow(),
                )
            )
        try:
            future = pool.submit(value, call_id=call_id, timeout=timeout)
        except StateError:  # redeployed or deleted between the two steps: once more
            future = self.pool(name, project).submit(value, call_id=call_id, timeout=timeout)
        return call_id, future

    def call(self, call_id: str) -> dict[str, Any]:
        """A call: ``{"id", "function", "project", "state", "input", "result", "error",
        "logs", "created_at", "started_at", "ended_at", "duration"}``."""
        with self.db.engine.connect() as conn:
            row = conn.execute(select(function_calls).where(function_calls.c.id == call_id)).first()
        if row is None:
            raise NotFoundError(f"no function call {call_id!r}")
        return _call_view(dict(row._mapping))

    def calls(self, name: str, limit: int = 50, project: str | None = None) -> list[dict[str, Any]]:
        """The latest calls of ``name`` of ``project``, newest first."""
        project = self.registry.row(name, project)["project"]  # 404 for an unknown function
        query = (
            select(function_calls)
            .where(function_calls.c.function == name, function_calls.c.project == project)
            .order_by(function_calls.c.created_at.desc(), function_calls.c.id.desc())
            .limit(limit)
        )
        with self.db.engine.connect() as conn:
            return [_call_view(dict(r._mapping)) for r in conn.execute(query)]

    def logs(self, name: str, limit: int = 20, project: str | None = None) -> list[dict[str, Any]]:
        """The logs of the latest calls of ``name`` of ``project``, newest first (finished
        calls' times, state and error with them)."""
        keys = ("id", "state", "created_at", "started_at", "ended_at", "error", "logs")
        return [{k: c[k] for k in keys} for c in self.calls(name, limit, project)]

    def shutdown(self) -> None:
        """Stop every pool: queued and running calls fail, workers are killed."""
        with self._lock:
            pools = dict(self._pools)
            self._pools.clear()
        _shutdown_pools(pools)

    # -- the pools' recorder -------------------------------------------------------------
    def started(self, call_id: str, started_at: Any) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                update(function_calls)
                .where(function_calls.c.id == call_id)
                .values(state="running", started_at=started_at)
            )

    def finished(self, call_id: str, outcome: dict[str, Any]) -> None:
        values = {
            "state": "succeeded" if outcome["ok"] else "failed",
            "result": outcome.get("result"),
            "error": outcome.get("error"),
            "logs": outcome.get("logs") or "",
            "ended_at": outcome.get("ended_at") or utcnow(),
        }
        if outcome.get("started_at") is not None:
            values["started_at"] = outcome["started_at"]
        with self.db.engine.begin() as conn:
            conn.execute(
                update(function_calls).where(function_calls.c.id == call_id).values(**values)
            )


def run_function(
    service: FunctionService,
    name: str,
    value: Any,
    timeout: float | None = None,
    project: str | None = None,
) -> Any:
    """The result of calling ``name`` (of ``project``, when given) with ``value``;
    :class:`FunctionFailedError` (the call in ``.call``) when it failed."""
    call = service.invoke(name, value, timeout, project)
    if call["state"] != "succeeded":
        raise FunctionFailedError(
            f"function {name!r} failed: {call['error']}",
            hint=f"`twin functions logs {name} --project {call['project']}` shows its output",
            call=call,
        )
    return call["result"]


def _check_input(value: Any) -> None:
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"a function's input is a JSON object, not {type(value).__name__}",
            hint='e.g. {"text": "hello"}',
        )
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"the input is not JSON: {exc}") from None


def _call_view(row: dict[str, Any]) -> dict[str, Any]:
    started, ended = as_utc(row.get("started_at")), as_utc(row.get("ended_at"))
    duration = (ended - started).total_seconds() if started and ended else None
    return {
        "id": row["id"],
        "function": row["function"],
        "project": row.get("project"),
        "state": row["state"],
        "input": row.get("input"),
        "result": row.get("result"),
        "error": row.get("error"),
        "logs": row.get("logs") or "",
        "created_at": as_utc(row.get("created_at")),
        "started_at": started,
        "ended_at": ended,
        "duration": duration,
    }

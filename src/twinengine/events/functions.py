"""Functions (serverless steps, as in OSCAR): their definitions, checked when deployed.

A function (:mod:`~twinengine.events.function_spec`) belongs to a project — its name is
unique within that project, so two projects may each have a ``clean``.
:class:`FunctionRegistry` keeps the definitions in the ``functions`` table, keyed by
(project, name), and finds a name in one project or among a caller's projects (refusing
one found in several): :meth:`~FunctionRegistry.deploy` checks the definition
(:mod:`~twinengine.events.function_checks`: the target's module can be found, or the
command's program exists) before storing it, and redeploying a name in its project
replaces it. A registry with a sandbox (``twin serve``'s:
:class:`~twinengine.events.function_sandbox.FunctionSandbox`) asks in that sandbox and
refuses what the sandbox cannot show. Running calls is the business of
:class:`~twinengine.events.function_service.FunctionService`.
"""

from __future__ import annotations

import shlex
from typing import Any

from sqlalchemy import and_, delete, insert, select

from twinengine.core import Database, NotFoundError, get_database
from twinengine.core.models import function_calls, functions
from twinengine.core.times import utcnow
from twinengine.events.function_checks import (
    check_command,
    check_env,
    check_name,
    check_pool,
    check_python_target,
)
from twinengine.events.function_sandbox import FunctionSandbox
from twinengine.events.function_spec import (
    KINDS,
    MAX_TIMEOUT,
    MAX_WORKERS,
    FunctionFailedError,
    FunctionSpec,
    InvalidFunctionError,
)
from twinengine.events.projectnames import one_named

__all__ = [
    "KINDS",
    "MAX_TIMEOUT",
    "MAX_WORKERS",
    "FunctionFailedError",
    "FunctionRegistry",
    "FunctionSpec",
    "InvalidFunctionError",
    "check_command",
    "check_env",
    "check_name",
    "check_pool",
    "check_python_target",
]


class FunctionRegistry:
    """Deploy, read, list and delete function definitions (checked in ``sandbox``)."""

    def __init__(self, db: Database | None = None, sandbox: FunctionSandbox | None = None):
        self.db = db or get_database()
        self.sandbox = sandbox

    def deploy(
        self,
        name: str,
        kind: str,
        target: str | list[str],
        project: str = "default",
        *,
        min_workers: int = 0,
        max_workers: int = 2,
        timeout: float = 60,
        env: dict[str, str] | None = None,
        created_by: str | None = None,
        network: bool = False,
    ) -> dict[str, Any]:
        """Check and store a function (replacing the one of that name in ``project``;
        other projects' functions of that name are theirs)."""
        check_name(name)
        env = check_env(env)
        check_pool(min_workers, max_workers, timeout)
        if not isinstance(network, bool):
            raise InvalidFunctionError("network is true or false", hint="e.g. network: false")
        if kind not in KINDS:
            raise InvalidFunctionError(
                f"unknown function kind {kind!r}", hint="kinds are: " + ", ".join(KINDS)
            )
        if kind == "python":
            if not isinstance(target, str):
                raise InvalidFunctionError("a python target is one string", hint="module:function")
            if self.sandbox is not None:
                self.sandbox.check(kind, None, env)
            target = check_python_target(target, env, self.sandbox)
        else:
            target = check_command(target, env)
            if self.sandbox is not None:
                self.sandbox.check(kind, shlex.split(target), env)
        config = {
            "min_workers": min_workers,
            "max_workers": max_workers,
            "timeout": float(timeout),
            "env": env,
            "network": network,
        }
        row = {
            "name": name,
            "project": project,
            "kind": kind,
            "target": target,
            "config": config,
            "created_at": utcnow(),
            "created_by": created_by,
        }
        with self.db.engine.begin() as conn:  # replaces only this project's function
            conn.execute(delete(functions).where(_named(functions.c.name, name, project)))
            conn.execute(insert(functions).values(**row))
        return self.get(name, project)

    def row(
        self, name: str, project: str | None = None, within: list[str] | None = None
    ) -> dict[str, Any]:
        """The function ``name`` of ``project`` — or of the one of ``within`` (None: any)
        that has it; NotFoundError alike for every project outside ``within``, StateError
        (409) when several of them have the name."""
        hint = "`twin functions list` shows the deployed ones"
        row = one_named(self.db, functions, "function", name, project, within, hint)
        return dict(row._mapping)

    def spec(self, name: str, project: str | None = None) -> FunctionSpec:
        return FunctionSpec.from_row(self.row(name, project))

    def get(
        self, name: str, project: str | None = None, within: list[str] | None = None
    ) -> dict[str, Any]:
        """A function's definition as a flat dict (pool settings at the top level)."""
        return _view(self.row(name, project, within))

    def delete(self, name: str, project: str | None = None) -> str:
        """Remove a function and the records of its calls; the project it was in."""
        project = self.row(name, project)["project"]
        with self.db.engine.begin() as conn:
            gone = conn.execute(delete(functions).where(_named(functions.c.name, name, project)))
            conn.execute(
                delete(function_calls).where(_named(function_calls.c.function, name, project))
            )
        if not gone.rowcount:  # deleted by someone else meanwhile
            raise NotFoundError(f"no function {name!r}")
        return project

    def list(self, projects: list[str] | None = None) -> list[dict[str, Any]]:
        """Functions by name and project, of ``projects`` (``None``: all)."""
        query = select(functions).order_by(functions.c.name, functions.c.project)
        if projects is not None:
            query = query.where(functions.c.project.in_(projects))
        with self.db.engine.connect() as conn:
            return [_view(dict(r._mapping)) for r in conn.execute(query)]


def _named(column: Any, name: str, project: str) -> Any:
    """The rows of function ``name`` of ``project`` (``column``: the name's column)."""
    return and_(column == name, column.table.c.project == project)


def _view(row: dict[str, Any]) -> dict[str, Any]:
    spec = FunctionSpec.from_row(row)
    return {
        "name": spec.name,
        "project": spec.project,
        "kind": spec.kind,
        "target": spec.target,
        "min_workers": spec.min_workers,
        "max_workers": spec.max_workers,
        "timeout": spec.timeout,
        "env": spec.env,
        "network": spec.network,
        "created_at": spec.created_at,
        "created_by": row.get("created_by"),
    }

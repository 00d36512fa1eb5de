"""Functions (serverless steps, as in OSCAR): their definitions, checked when deployed.

A function is a named Python callable (kind ``python``, target ``module:function``) or a
command line (kind ``command``) that belongs to a project — its name is unique within
that project, so two projects may each have a ``clean`` — and runs in a pool of worker
processes scaling between ``min_workers`` and ``max_workers``. :class:`FunctionRegistry`
keeps the definitions in the ``functions`` table, keyed by (project, name), and finds a
name in one project or among a caller's projects (refusing one found in several):
:meth:`~FunctionRegistry.deploy` checks the target before storing it — the syntax of
``module:function`` and that the module can be found (``importlib.util.find_spec``,
asked in a child interpreter with the function's environment, so deploying never runs
user code in the caller), or that the command's program exists — and redeploying a name
in its project replaces it. A registry with a
sandbox (``twin serve``'s: :class:`~twinengine.events.function_sandbox.FunctionSandbox`)
asks in that sandbox and refuses what the sandbox cannot show. ``network`` (default
false) is whether the function's workers may use the network. Running calls is the
business of :class:`~twinengine.events.function_service.FunctionService` (re-exported
here, with :class:`~twinengine.events.function_pool.FunctionPool` and
:func:`~twinengine.events.function_service.run_function`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, delete, insert, select

from twinengine.core import (
    Database,
    InvalidInputError,
    NotFoundError,
    StateError,
    TwinError,
    get_database,
)
from twinengine.core.lazy import lazy_exports
from twinengine.core.models import function_calls, functions
from twinengine.core.times import as_utc as aware
from twinengine.core.times import utcnow
from twinengine.events.function_sandbox import FunctionSandbox
from twinengine.workflows.safetext import check_text

KINDS = ("python", "command")
MAX_WORKERS = 64  # the most workers one function may ask for
MAX_TIMEOUT = 24 * 3600.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_RESERVED = {"calls"}  # /functions/calls/{id} is a route
_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_TARGET = re.compile(rf"^({_DOTTED}):({_DOTTED})$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIND_SPEC = (
    "import importlib.util, sys\n"
    "try:\n"
    "    found = importlib.util.find_spec(sys.argv[1])\n"
    "except BaseException as exc:\n"
    "    print(f'{type(exc).__name__}: {exc}'); sys.exit(3)\n"
    "sys.exit(0 if found else 4)\n"
)

__getattr__, _dir = lazy_exports(
    __name__,
    {
        "FunctionPool": "twinengine.events.function_pool",
        "FunctionService": "twinengine.events.function_service",
        "run_function": "twinengine.events.function_service",
    },
)


class InvalidFunctionError(InvalidInputError):
    """A function definition is wrong: bad name, target, kind or pool settings."""


class FunctionFailedError(TwinError):
    """A function call failed (raised by :func:`run_function`, for callers that need a
    result or an exception, such as the trigger engine's pre-processing)."""

    def __init__(self, message: str, *, hint: str | None = None, call: dict | None = None):
        super().__init__(message, hint=hint)
        self.call = call or {}


@dataclass(frozen=True)
class FunctionSpec:
    """What a pool needs to run a function."""

    name: str
    project: str
    kind: str
    target: str
    min_workers: int = 0
    max_workers: int = 2
    timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    network: bool = False  # sandboxed workers may use the network

    @property
    def argv(self) -> list[str]:
        """The command line of a command function."""
        return shlex.split(self.target)

    def environment(self) -> dict[str, str]:
        """The workers' environment: this process's, then the function's ``env``."""
        return {**os.environ, **self.env}

    def fingerprint(self) -> tuple[Any, ...]:
        """Equal fingerprints: the same deployment (a redeploy changes ``created_at``)."""
        return (
            self.kind,
            self.target,
            self.min_workers,
            self.max_workers,
            self.timeout,
            tuple(sorted(self.env.items())),
            self.created_at,
            self.network,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FunctionSpec:
        config = row.get("config") or {}
        return cls(
            name=row["name"],
            project=row["project"],
            kind=row["kind"],
            target=row["target"],
            min_workers=int(config.get("min_workers", 0)),
            max_workers=int(config.get("max_workers", 2)),
            timeout=float(config.get("timeout", 60.0)),
            env=dict(config.get("env") or {}),
            created_at=aware(row.get("created_at")),
            network=bool(config.get("network", False)),
        )


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED:
        raise InvalidFunctionError(
            f"invalid function name {name!r}",
            hint="1-64 letters, digits, . _ or -, starting with a letter or digit "
            "(and not 'calls')",
        )
    return name


def check_env(env: dict[str, Any] | None) -> dict[str, str]:
    if env is None:
        return {}
    if not isinstance(env, dict):
        raise InvalidFunctionError(
            "env must be a mapping of variable names to strings", hint='e.g. {"LANG": "C"}'
        )
    bad = [k for k in env if not isinstance(k, str) or not _ENV_NAME.match(k)]
    if bad:
        raise InvalidFunctionError(
            f"invalid environment variable name(s): {', '.join(map(repr, bad))}",
            hint="names are letters, digits and _, not starting with a digit",
        )
    values = {k: v if isinstance(v, str) else str(v) for k, v in env.items()}
    for key, value in values.items():  # a NUL …: refused now, not when a worker starts
        check_text(value, f"env {key!r}")
    return values


def check_python_target(
    target: str, env: dict[str, str] | None = None, sandbox: FunctionSandbox | None = None
) -> str:
    """``target`` if it is ``module:function`` and the module can be found with the
    function's environment (in ``sandbox``, as its workers will look);
    :class:`InvalidFunctionError` saying what is wrong otherwise."""
    match = _TARGET.match(target.strip()) if isinstance(target, str) else None
    if match is None:
        raise InvalidFunctionError(
            f"invalid python target {target!r}",
            hint="write module:function, e.g. mypackage.steps:normalise",
        )
    module = match.group(1)
    command = [sys.executable, "-c", _FIND_SPEC, module]
    try:
        if sandbox is not None and sandbox.confines:
            probe = sandbox.run(command, env or {}, timeout=30, python=True)
        else:
            probe = subprocess.run(
                command,
                env={**os.environ, **(env or {})},
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
    except subprocess.TimeoutExpired:
        raise InvalidFunctionError(
            f"looking for module {module!r} took more than 30 s",
            hint="its parent package may hang when imported",
        ) from None
    if probe.returncode != 0:
        why = probe.stdout.strip().splitlines()[-1:] or ["not found"]
        raise InvalidFunctionError(
            f"cannot find python module {module!r} ({why[0]})",
            hint="install it in TwinEngine's environment, or add its folder to PYTHONPATH "
            "(the function's env or the server's)",
        )
    return target.strip()


def check_command(target: str | list[str], env: dict[str, str] | None = None) -> str:
    """The command line as one string, if its program exists (on ``PATH`` or as a file)."""
    if isinstance(target, str):
        try:
            argv = shlex.split(target)
        except ValueError as exc:
            raise InvalidFunctionError(
                f"cannot parse command {target!r}: {exc}",
                hint="quote arguments as a shell would, or give the command as a list",
            ) from None
        text = target.strip()
    elif isinstance(target, list | tuple) and all(isinstance(a, str) for a in target):
        argv = list(target)
        text = shlex.join(argv)
    else:
        raise InvalidFunctionError(
            "a command target is a string or a list of strings", hint='e.g. "tr a-z A-Z"'
        )
    if not argv or not argv[0]:
        raise InvalidFunctionError("the command is empty", hint='e.g. --command "tr a-z A-Z"')
    for index, arg in enumerate(argv):
        check_text(arg, f"command argument {index}")
    program = argv[0]
    if os.sep in program:
        path = Path(program)
        if not path.is_file() or not os.access(path, os.X_OK):
            raise InvalidFunctionError(
                f"program {program!r} is not an executable file",
                hint="give the full path of an executable, or a program on PATH",
            )
    else:
        search = (env or {}).get("PATH", os.environ.get("PATH", os.defpath))
        if shutil.which(program, path=search) is None:
            raise InvalidFunctionError(
                f"program {program!r} is not on PATH",
                hint="install it, give its full path, or set PATH in the function's env",
            )
    return text


def check_pool(min_workers: int, max_workers: int, timeout: float) -> None:
    if not isinstance(min_workers, int) or not isinstance(max_workers, int):
        raise InvalidFunctionError(
            "min_workers and max_workers are whole numbers", hint="e.g. 0 and 2"
        )
    if not 0 <= min_workers <= max_workers or not 1 <= max_workers <= MAX_WORKERS:
        raise InvalidFunctionError(
            f"invalid pool size: min_workers={min_workers}, max_workers={max_workers}",
            hint=f"0 <= min_workers <= max_workers, 1 <= max_workers <= {MAX_WORKERS}",
        )
    if not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        raise InvalidFunctionError(
            f"invalid timeout {timeout!r}", hint=f"seconds, more than 0 and at most {MAX_TIMEOUT:g}"
        )


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
        query = select(functions).where(functions.c.name == name)
        if project is not None:
            query = query.where(functions.c.project == project)
        if within is not None:
            query = query.where(functions.c.project.in_(within))
        with self.db.engine.connect() as conn:
            rows = conn.execute(query.order_by(functions.c.project).limit(10)).all()
        if not rows:
            raise NotFoundError(
                f"no function {name!r}", hint="`twin functions list` shows the deployed ones"
            )
        if len(rows) > 1:
            raise StateError(
                f"function {name!r} is in several projects ({', '.join(r.project for r in rows)})",
                hint="name its project (?project=…, --project)",
            )
        return dict(rows[0]._mapping)

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


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_dir()))

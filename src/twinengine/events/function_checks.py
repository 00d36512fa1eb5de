"""The checks a function definition passes before it is stored.

:func:`check_name` (1-64 letters, digits, ``. _ -``; not ``calls``, a route),
:func:`check_env` (variable names, text values without NUL), :func:`check_pool` (worker
counts and timeout within :data:`~.function_spec.MAX_WORKERS` and
:data:`~.function_spec.MAX_TIMEOUT`), :func:`check_python_target` (``module:function``
whose module can be found — asked with ``importlib.util.find_spec`` in a child
interpreter with the function's environment, or in the sandbox its workers will run in,
so checking never runs user code in the caller) and :func:`check_command` (a command
line whose program exists). Each raises
:class:`~.function_spec.InvalidFunctionError` saying what is wrong and how to fix it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from twinengine.events.function_sandbox import FunctionSandbox
from twinengine.events.function_spec import MAX_TIMEOUT, MAX_WORKERS, InvalidFunctionError
from twinengine.workflows.safetext import check_text

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

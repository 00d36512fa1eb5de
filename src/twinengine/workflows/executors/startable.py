"""What a command line must be for the system to start it at all.

``execve`` takes C strings: an argument, an environment variable or a file name that
holds a NUL byte cannot be passed (``subprocess.Popen`` raises ``ValueError: embedded
null byte``), and an environment variable's name may not be empty or hold ``=``. Such a
command line can reach an executor from a run input, an expression
(``String.fromCharCode(0)``) or a function's definition; :func:`check_startable` tells
what is wrong with it as a :class:`CommandStartError` — which the executors report as a
step that could not start, and the function workers as a failed call — before anything
is opened or spawned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from twinengine.core.errors import InvalidInputError


class CommandStartError(InvalidInputError):
    """A command that cannot be started as given (a NUL byte where the system takes none)."""


_HINT = "a command line, its environment and its file names cannot carry NUL bytes: remove them"


def start_problem(
    argv: Iterable[str],
    env: Mapping[str, str] | None,
    paths: Mapping[str, str | None] | None = None,
) -> str | None:
    """Why ``argv`` with ``env`` (and the files ``paths`` names, by role) cannot be
    started; None when it can."""
    if any("\0" in str(arg) for arg in argv):
        return "an argument holds a NUL byte"
    for name, value in (env or {}).items():
        if not name or "=" in name or "\0" in name:
            return f"the environment variable name {name!r} is not valid (empty, '=' or NUL)"
        if "\0" in str(value):
            return f"the environment variable {name!r} holds a NUL byte"
    for role, path in (paths or {}).items():
        if path is not None and "\0" in path:
            return f"the file name of its {role} holds a NUL byte"
    return None


def check_startable(
    argv: Iterable[str],
    env: Mapping[str, str] | None,
    paths: Mapping[str, str | None] | None = None,
) -> None:
    """:class:`CommandStartError` when :func:`start_problem` finds something."""
    problem = start_problem(argv, env, paths)
    if problem is not None:
        raise CommandStartError(problem, hint=_HINT)

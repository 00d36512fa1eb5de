"""Child processes of TwinEngine's servers: stop a process group, read an exit without
reaping, and the entry point of a child that continues a stored run.

:func:`kill_group` kills a child that leads its own session and everything it started;
:func:`child_env` is the environment of a child working on the same home;
:func:`exit_code_of` tells whether a child ended without reaping it (the dispatcher
records a run's end before the process entry disappears); ``python -m
twinengine.workflows.children resume RUN_ID [SANDBOX]`` is the child the run dispatcher
starts to continue a resumed run (what ``twin runs resume`` does in the foreground), in
the server's sandbox.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from typing import Any

from twinengine.workflows.sandbox import sandbox_env


def kill_group(proc: subprocess.Popen, wait: float = 5.0) -> None:
    """Kill ``proc`` and everything it started (it leads its own session)."""
    from twinengine.workflows.executors.base import kill_tree

    kill_tree(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(wait)


def child_env(settings: Any, **extra: str) -> dict[str, str]:
    """This process's environment for a child working on the same home, database and
    object store as ``settings`` (plus ``extra`` variables)."""
    env = dict(os.environ)
    env.update(
        TWIN_HOME=str(settings.home),
        TWIN_DATABASE_URL=settings.database_url,
        TWIN_STORE=settings.store,
        **sandbox_env(settings),
    )
    env.update(extra)
    return env


def exit_code_of(child: subprocess.Popen) -> int | None:
    """A child's exit code once it ended, without reaping it (None while it runs)."""
    if child.returncode is not None:
        return child.returncode
    try:
        info = os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:  # reaped elsewhere
        code = child.poll()
        return 1 if code is None else code
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else 128 + info.si_status


def resume_main(run_id: str, sandbox: str | None = None) -> int:
    """Child entry point continuing a stored run (what ``twin runs resume`` does);
    ``sandbox``: the server's, which the run's commands use."""
    from twinengine.workflows.cwlrunner import run_cwl
    from twinengine.workflows.options import RunOptions
    from twinengine.workflows.runs import RunStore

    run = RunStore().get(run_id)
    argv, cwd, options = RunOptions.for_resume(run)
    options.sandbox = sandbox or options.sandbox
    if os.path.isdir(cwd):
        os.chdir(cwd)
    return run_cwl(argv, options)


if __name__ == "__main__":  # pragma: no cover - run as a child by the dispatcher
    from twinengine.core import TwinError

    try:
        sys.exit(resume_main(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
    except TwinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)

"""The executor interface: where a prepared command runs.

The scheduler turns each CWL CommandLineTool invocation into a :class:`JobSpec` (argv,
working directory, environment, stdio paths, time limit, resources) and hands it to an
:class:`Executor`. An executor starts the command somewhere — a local process, a Dask
worker, later a Slurm job or a Kubernetes pod — and reports a :class:`JobResult` when it
ends. Executors are found through the ``twinengine.executors`` entry-point group, so a
plug-in package adds one without touching TwinEngine.

The contract is deliberately small and non-blocking: ``submit`` returns at once,
``wait`` blocks until at least one job ended (or a timeout), ``cancel`` stops a job.
Batch systems fit it by polling their queue in ``wait``.

A spec with ``sandbox`` set (runs of ``twin serve``) is confined where it is started:
:func:`spawn` — which the local executor and :func:`run_blocking` (Dask) both use —
hands the spec's writable folders, read-only inputs, network flag, ``ramMax`` and time
limit to the sandbox (:mod:`twinengine.workflows.sandbox`) and starts what it returns;
:func:`exit_code` reads the ended launcher's status as a plain run's (a command killed
by signal N is -N, not the sandbox's 128+N). A sandbox that cannot start the command
(no network helper, no free uid) raises a :class:`~twinengine.core.errors.TwinError`,
which the executors report like a program that does not exist: ``JobResult.error``.
So does every other failure to start a command — a NUL byte in its argv, environment or
file names (:func:`check_spec`, before anything is opened), a ``ValueError`` or
``OSError`` of ``Popen``: an executor never raises for what it was given to run, so a
step that cannot start fails with a message instead of stopping its run.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import shutil
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from twinengine.core.errors import ConfigError, TwinError
from twinengine.workflows.executors.startable import check_startable
from twinengine.workflows.sandbox import Launch, Mount, SandboxPolicy, open_sandbox

log = logging.getLogger("twinengine.workflows")


@dataclass
class JobSpec:
    """Everything needed to run one command, with no CWL left in it."""

    key: str  # unique per submission
    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdin_path: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    # True: the path is a log, not a file the tool's outputs need — an executor may create
    # it only when the command writes something (the local one does: no empty log files)
    stdout_is_log: bool = False
    stderr_is_log: bool = False
    timelimit: float | None = None  # seconds; None or 0: no limit
    cores: int = 1
    ram_mb: int = 0
    name: str = ""
    # the sandbox (a backend name: ``bwrap``, ``podman``, ``none``) and what it lets the
    # command touch; None: the command runs plainly (``twin run``)
    sandbox: str | None = None
    writable: tuple[str, ...] = ()  # folders it may write (its working and temporary one)
    readonly: tuple[Mount, ...] = ()  # its inputs, shown read-only
    network: bool = False
    ram_max_mb: int = 0  # the tool's ramMax: its sandboxed processes' data limit (0: none)


@dataclass
class JobResult:
    """How a command ended."""

    key: str
    exit_code: int  # negative: killed by that signal number
    started_at: float = 0.0  # epoch seconds
    ended_at: float = 0.0
    peak_memory: int | None = None  # bytes (max resident set size)
    timed_out: bool = False
    cancelled: bool = False
    error: str | None = None  # the command could not be started at all
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def wall_time(self) -> float:
        return max(0.0, self.ended_at - self.started_at)


class Executor(ABC):
    """Runs :class:`JobSpec` commands and reports :class:`JobResult` s."""

    #: name under which the executor is registered
    name = "abstract"

    def __init__(self, *, cores: int, ram_mb: int, **options: Any) -> None:
        self.cores = cores
        self.ram_mb = ram_mb
        self.options = options

    def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire what the executor needs (a cluster connection …)."""

    @abstractmethod
    def submit(self, spec: JobSpec) -> None:
        """Start ``spec``; must not block on the command."""

    @abstractmethod
    def wait(self, timeout: float | None) -> list[JobResult]:
        """Block until at least one submitted job ended or ``timeout`` passed."""

    @abstractmethod
    def cancel(self, key: str) -> None:
        """Stop the job ``key``; its result is still reported by :meth:`wait`."""

    @abstractmethod
    def running(self) -> int:
        """Number of submitted jobs whose result was not yet returned."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources; running jobs are cancelled."""


#: executors shipped with TwinEngine: found without scanning installed packages' entry
#: points (which costs tens of milliseconds per command); plug-ins use other names
BUILTIN_EXECUTORS = {
    "local": "twinengine.workflows.executors.local:LocalExecutor",
    "dask": "twinengine.workflows.executors.dask:DaskExecutor",
}


class _Builtin:
    """A built-in executor, loadable like an entry point."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.value = BUILTIN_EXECUTORS[name]

    def load(self) -> Any:
        module, _, attr = self.value.partition(":")
        return getattr(importlib.import_module(module), attr)


def available_executors() -> dict[str, Any]:
    """Registered executors by name: the built-in ones and the entry-point group
    ``twinengine.executors`` (plug-ins cannot replace a built-in name)."""
    from importlib.metadata import entry_points

    found: dict[str, Any] = {ep.name: ep for ep in entry_points(group="twinengine.executors")}
    found.update({name: _Builtin(name) for name in BUILTIN_EXECUTORS})
    return found


def check_executor(name: str) -> Any:
    """The registry entry of executor ``name``; :class:`ConfigError` when there is none."""
    if name in BUILTIN_EXECUTORS:
        return _Builtin(name)
    registry = available_executors()
    if name not in registry:
        raise ConfigError(
            f"unknown executor {name!r}",
            hint="choose one of: " + ", ".join(sorted(registry)),
        )
    return registry[name]


def make_executor(name: str, *, cores: int, ram_mb: int, **options: Any) -> Executor:
    """Instantiate the executor registered as ``name``."""
    cls = check_executor(name).load()
    return cls(cores=cores, ram_mb=ram_mb, **options)


def check_spec(spec: JobSpec) -> None:
    """:class:`~.startable.CommandStartError` when ``spec`` cannot be started as given
    (a NUL byte in its argv, environment, folder or stream files)."""
    streams = {"stdin": spec.stdin_path, "stdout": spec.stdout_path, "stderr": spec.stderr_path}
    check_startable(spec.argv, spec.env, {"working folder": spec.cwd, **streams})


def open_stdin(spec: JobSpec) -> Any:
    return open(spec.stdin_path, "rb") if spec.stdin_path else subprocess.DEVNULL


def _open_stdio(spec: JobSpec) -> tuple[Any, Any, Any]:
    stdin = open_stdin(spec)
    stdout = open(spec.stdout_path, "wb") if spec.stdout_path else subprocess.DEVNULL  # noqa: SIM115
    if spec.stderr_path and spec.stderr_path == spec.stdout_path:
        stderr: Any = subprocess.STDOUT
    else:
        stderr = open(spec.stderr_path, "wb") if spec.stderr_path else subprocess.DEVNULL  # noqa: SIM115
    return stdin, stdout, stderr


def spawn(
    spec: JobSpec, stdio: tuple[Any, Any, Any] | None = None, executable: str | None = None
) -> subprocess.Popen[bytes]:
    """Start ``spec`` as a child in its own process group (so it can be killed whole).

    ``stdio`` replaces the files named in ``spec`` (file objects or descriptors; they are
    closed here once the child has them); ``executable`` is the program already found on
    PATH (else the child searches PATH itself). ``process_group=0`` rather than
    ``start_new_session``: the latter makes CPython fall back from vfork to fork, which
    costs milliseconds per spawn in a large process.
    """
    if stdio is None:
        check_spec(spec)
    stdin, stdout, stderr = stdio or _open_stdio(spec)
    try:
        if spec.sandbox:
            return _confined(spec, executable, (stdout, stderr)).popen(
                cwd=spec.cwd,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                close_fds=True,
                process_group=0,
            )
        return subprocess.Popen(
            spec.argv,
            executable=executable,
            cwd=spec.cwd,
            env=spec.env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            close_fds=True,
            process_group=0,
        )
    finally:
        for handle in (stdin, stdout, stderr):
            if hasattr(handle, "close"):
                handle.close()
            elif isinstance(handle, int) and handle > 2:
                os.close(handle)


def _confined(spec: JobSpec, executable: str | None, streams: tuple[Any, Any]) -> Launch:
    """``spec`` in its sandbox, ready to start; the files it writes its streams to (in
    its working folder) become the user it runs as."""
    box = open_sandbox(spec.sandbox or "none")
    name = spec.argv[0] if spec.argv else ""
    if box.confines and executable is None:  # the same error as an unconfined start
        found = os.path.exists(name) if os.sep in name else shutil.which(name, path=_path(spec))
        if not found:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", name)
    policy = SandboxPolicy(
        spec.cwd,
        spec.writable,
        spec.readonly,
        spec.network,
        memory_mb=spec.ram_max_mb,
        cpu_seconds=(spec.timelimit or 0) * spec.cores,
    )
    launch = box.launch(spec.argv, spec.env, policy)
    user = launch.user
    if user is not None and box.confines:
        folders = tuple(os.path.realpath(folder) + os.sep for folder in spec.writable)
        try:
            for stream in streams:
                if hasattr(stream, "fileno") and os.path.realpath(stream.name).startswith(folders):
                    os.fchown(stream.fileno(), user.uid, user.gid)
        except BaseException:
            launch.abandon()  # its uid lease and pipes
            raise
    return launch


def _path(spec: JobSpec) -> str:
    return (spec.env if spec.env is not None else os.environ).get("PATH", os.defpath)


def kill_tree(pid: int, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the process group led by ``pid`` (ignore if it is gone)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def exit_code_from_status(status: int) -> int:
    """Convert a ``wait`` status into Popen's convention (negative signal numbers)."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def exit_code(spec: JobSpec, status: int) -> int:
    """The exit code of ``spec``'s command from its launcher's ``wait`` status, as a
    plain run reports it (negative: killed by that signal)."""
    code = exit_code_from_status(status)
    return open_sandbox(spec.sandbox).exit_code(code) if spec.sandbox else code


def start_error(spec: JobSpec, exc: Exception) -> str:
    """What ``JobResult.error`` says when ``spec`` could not be started (any error: one
    that is no :class:`TwinError`, ``OSError`` or ``ValueError`` is also logged)."""
    if isinstance(exc, TwinError):
        return f"{exc.message}; {exc.hint}" if exc.hint else exc.message
    if not isinstance(exc, (OSError, ValueError)):
        log.error("cannot start %s", spec.name or spec.key, exc_info=exc)
    return f"{spec.argv[0] if spec.argv else ''}: {exc}"


def run_blocking(spec: JobSpec, should_stop: Any = None) -> JobResult:
    """Run ``spec`` to completion in the calling thread (used by remote executors)."""
    started = time.time()
    try:
        proc = spawn(spec)
    except Exception as exc:  # any failure to start is the step's result
        return JobResult(spec.key, 127, started, time.time(), error=start_error(spec, exc))
    deadline = started + spec.timelimit if spec.timelimit else None
    timed_out = cancelled = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.time()
        if deadline and now > deadline and not timed_out:
            timed_out = True
            kill_tree(proc.pid)
        if should_stop is not None and not cancelled and should_stop():
            cancelled = True
            kill_tree(proc.pid)
        time.sleep(0.005 if now - started < 1 else 0.05)
    proc.returncode = exit_code(spec, status)
    return JobResult(
        spec.key,
        proc.returncode,
        started,
        time.time(),
        peak_memory=usage.ru_maxrss * 1024,
        timed_out=timed_out,
        cancelled=cancelled,
    )

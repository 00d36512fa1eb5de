"""The local executor: commands run as child processes of the TwinEngine process.

No polling: each child is watched through a Linux pidfd in a selector, so the scheduler
wakes the moment a command ends. Streams that are only logs (``JobSpec.stdout_is_log`` /
``stderr_is_log``) go through a pipe watched by the same selector, and their log file is
created on the first byte — a thousand quiet steps leave no thousand empty files. The
exit status and the peak resident memory come from one ``wait4`` call. Each program is
looked up on ``PATH`` once per run. (Starting commands from a separate thread was tried
and measured slower here: the hand-over costs more than the spawn it overlaps.) Time
limits and
cancellation kill the child's whole process group (SIGTERM, then SIGKILL after a grace
period). Parallelism is bounded by the scheduler's resource accounting (cores and RAM in
flight), not here.
"""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from twinengine.workflows.executors.base import (
    Executor,
    JobResult,
    JobSpec,
    check_spec,
    exit_code,
    kill_tree,
    open_stdin,
    spawn,
    start_error,
)

_GRACE = 5.0  # seconds between SIGTERM and SIGKILL


class _LogPipe:
    """The read end of a child's log stream; the log file appears with the first byte."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd = fd
        self.path = path
        self.file: Any = None

    def pump(self) -> bool:
        """Copy what is readable now to the log; False at end of stream."""
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return True
            if not data:
                return False
            if self.file is None:
                self.file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
            self.file.write(data)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        os.close(self.fd)


@dataclass
class _Child:
    spec: JobSpec
    proc: subprocess.Popen[bytes]
    fd: int
    started: float
    deadline: float | None
    term_sent: float | None = None
    timed_out: bool = False
    cancelled: bool = False
    pipes: tuple[_LogPipe, ...] = ()


def _stop(child: _Child) -> None:
    """Ask a child's process group to end (SIGKILL follows after the grace period)."""
    child.cancelled = True
    child.term_sent = time.time()
    kill_tree(child.proc.pid)


class LocalExecutor(Executor):
    """Run commands as local processes (the default executor)."""

    name = "local"

    def __init__(self, *, cores: int, ram_mb: int, **options: object) -> None:
        super().__init__(cores=cores, ram_mb=ram_mb, **options)
        self._selector = selectors.DefaultSelector()
        self._children: dict[str, _Child] = {}
        self._by_fd: dict[int, _Child] = {}
        self._pipes: dict[int, _LogPipe] = {}
        self._done: list[JobResult] = []
        self._programs: dict[tuple[str, str], str | None] = {}

    def _program(self, spec: JobSpec) -> str | None:
        """The file ``argv[0]`` names on the job's PATH, looked up once per run.

        Left to the child, every spawn would try each PATH folder in turn (one failed
        exec per folder before the right one).
        """
        name = spec.argv[0] if spec.argv else ""
        if not name or os.sep in name:
            return None
        path = (spec.env if spec.env is not None else os.environ).get("PATH", os.defpath)
        key = (name, path)
        if key not in self._programs:
            self._programs[key] = shutil.which(name, path=path)
        return self._programs[key]

    def _stdio(self, spec: JobSpec) -> tuple[tuple[Any, Any, Any], list[_LogPipe]]:
        """The child's stdin/stdout/stderr: files, or pipes for log-only streams."""
        pipes: list[_LogPipe] = []
        opened: list[Any] = []

        def stream(path: str | None, is_log: bool) -> Any:
            if not path:
                return subprocess.DEVNULL
            if is_log:
                read_end, write_end = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
                os.set_blocking(write_end, True)
                pipes.append(_LogPipe(read_end, path))
                opened.append(write_end)
                return write_end
            handle = open(path, "wb")  # noqa: SIM115 - spawn() closes it
            opened.append(handle)
            return handle

        try:
            stdin = open_stdin(spec)
            opened.append(stdin)
            stdout = stream(spec.stdout_path, spec.stdout_is_log)
            if spec.stderr_path and spec.stderr_path == spec.stdout_path:
                stderr: Any = subprocess.STDOUT
            else:
                stderr = stream(spec.stderr_path, spec.stderr_is_log)
        except BaseException:
            for item in opened:
                os.close(item) if isinstance(item, int) else getattr(item, "close", bool)()
            for pipe in pipes:
                pipe.close()
            raise
        return (stdin, stdout, stderr), pipes

    def _launch(self, spec: JobSpec) -> _Child | JobResult:
        """Start ``spec``: a watched child, or the result of a failed start."""
        started = time.time()
        pipes: list[_LogPipe] = []
        try:
            check_spec(spec)
            stdio, pipes = self._stdio(spec)
            proc = spawn(spec, stdio, self._program(spec))
        except Exception as exc:  # any failure to start is the step's result
            for pipe in pipes:
                pipe.close()
            return JobResult(spec.key, 127, started, time.time(), error=start_error(spec, exc))
        fd = os.pidfd_open(proc.pid)
        deadline = started + spec.timelimit if spec.timelimit else None
        return _Child(spec, proc, fd, started, deadline, pipes=tuple(pipes))

    def _adopt(self, item: _Child | JobResult) -> None:
        """Watch a started child in the selector (or keep a start failure as a result)."""
        if isinstance(item, JobResult):
            self._done.append(item)
            return
        self._children[item.spec.key] = item
        self._by_fd[item.fd] = item
        self._selector.register(item.fd, selectors.EVENT_READ)
        for pipe in item.pipes:
            self._pipes[pipe.fd] = pipe
            self._selector.register(pipe.fd, selectors.EVENT_READ)

    def submit(self, spec: JobSpec) -> None:
        self._adopt(self._launch(spec))

    def _close_pipe(self, pipe: _LogPipe) -> None:
        if self._pipes.pop(pipe.fd, None) is not None:
            self._selector.unregister(pipe.fd)
            pipe.close()

    def _reap(self, child: _Child) -> JobResult:
        _, status, usage = os.wait4(child.proc.pid, 0)
        child.proc.returncode = exit_code(child.spec, status)
        self._selector.unregister(child.fd)
        os.close(child.fd)
        del self._by_fd[child.fd]
        del self._children[child.spec.key]
        for pipe in child.pipes:  # what the command wrote before it ended
            if pipe.fd in self._pipes:
                pipe.pump()
                self._close_pipe(pipe)
        return JobResult(
            child.spec.key,
            child.proc.returncode,
            child.started,
            time.time(),
            peak_memory=usage.ru_maxrss * 1024,
            timed_out=child.timed_out,
            cancelled=child.cancelled,
        )

    def _enforce_limits(self, now: float) -> float | None:
        """Kill children past their deadline; return the next moment to look again."""
        upcoming: list[float] = []
        for child in list(self._children.values()):
            if child.term_sent is not None:  # asked to stop: SIGKILL after the grace period
                if now - child.term_sent > _GRACE:
                    kill_tree(child.proc.pid, signal.SIGKILL)
                else:
                    upcoming.append(child.term_sent + _GRACE)
            elif child.deadline is not None:
                if now >= child.deadline:
                    child.timed_out = True
                    child.term_sent = now
                    kill_tree(child.proc.pid)
                    upcoming.append(now + _GRACE)
                else:
                    upcoming.append(child.deadline)
        return min(upcoming, default=None)

    def wait(self, timeout: float | None) -> list[JobResult]:
        if self._done:
            done, self._done = self._done, []
            return done
        if not self._children:
            if timeout:
                time.sleep(min(timeout, 0.05))
            return []
        now = time.time()
        nearest = self._enforce_limits(now)
        if nearest is not None:
            limit = max(0.0, nearest - now)
            timeout = limit if timeout is None else min(timeout, limit)
        results = []
        events = self._selector.select(timeout)
        for key, _ in events:  # logs first: a child's last bytes before its exit
            pipe = self._pipes.get(key.fd)
            if pipe is not None and not pipe.pump():
                self._close_pipe(pipe)
        for key, _ in events:
            child = self._by_fd.get(key.fd)
            if child is not None:
                results.append(self._reap(child))
        return results

    def cancel(self, key: str) -> None:
        child = self._children.get(key)
        if child is not None and child.term_sent is None:
            _stop(child)

    def running(self) -> int:
        return len(self._children) + len(self._done)

    def close(self) -> None:
        for key in list(self._children):
            self.cancel(key)
        deadline = time.time() + _GRACE
        while self._children and time.time() < deadline:
            self.wait(0.1)
        for child in list(self._children.values()):
            kill_tree(child.proc.pid, signal.SIGKILL)
            self._reap(child)
        self._selector.close()

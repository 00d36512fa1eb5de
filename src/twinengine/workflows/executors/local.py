"""The local executor: commands run as child processes of the TwinEngine process.

No polling: each child is watched through a Linux pidfd in a selector, so the scheduler
wakes the moment a command ends. The exit status and the peak resident memory come from
one ``wait4`` call. Time limits and cancellation kill the child's whole process group
(SIGTERM, then SIGKILL after a grace period). Parallelism is bounded by the scheduler's
resource accounting (cores and RAM in flight), not here.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass

from twinengine.workflows.executors.base import (
    Executor,
    JobResult,
    JobSpec,
    exit_code_from_status,
    kill_tree,
    spawn,
)

_GRACE = 5.0  # seconds between SIGTERM and SIGKILL


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


class LocalExecutor(Executor):
    """Run commands as local processes (the default executor)."""

    name = "local"

    def __init__(self, *, cores: int, ram_mb: int, **options: object) -> None:
        super().__init__(cores=cores, ram_mb=ram_mb, **options)
        self._selector = selectors.DefaultSelector()
        self._children: dict[str, _Child] = {}
        self._by_fd: dict[int, _Child] = {}
        self._done: list[JobResult] = []

    def submit(self, spec: JobSpec) -> None:
        started = time.time()
        try:
            proc = spawn(spec)
        except OSError as exc:
            self._done.append(
                JobResult(spec.key, 127, started, time.time(), error=f"{spec.argv[0]}: {exc}")
            )
            return
        fd = os.pidfd_open(proc.pid)
        deadline = started + spec.timelimit if spec.timelimit else None
        child = _Child(spec, proc, fd, started, deadline)
        self._children[spec.key] = child
        self._by_fd[fd] = child
        self._selector.register(fd, selectors.EVENT_READ)

    def _reap(self, child: _Child) -> JobResult:
        _, status, usage = os.wait4(child.proc.pid, 0)
        child.proc.returncode = exit_code_from_status(status)
        self._selector.unregister(child.fd)
        os.close(child.fd)
        del self._by_fd[child.fd]
        del self._children[child.spec.key]
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
        for key, _ in self._selector.select(timeout):
            child = self._by_fd.get(key.fd)
            if child is not None:
                results.append(self._reap(child))
        return results

    def cancel(self, key: str) -> None:
        child = self._children.get(key)
        if child is None or child.term_sent is not None:
            return
        child.cancelled = True
        child.term_sent = time.time()
        kill_tree(child.proc.pid)

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

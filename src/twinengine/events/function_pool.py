"""The worker pool of one function, scaling with the length of its queue.

:class:`FunctionPool` serves one project's function (the service keeps one per
(project, name), so two projects' functions of the same name never share workers,
folders or a queue); it holds a queue of calls and between ``min_workers`` and
``max_workers`` workers (:mod:`twinengine.events.function_workers`), each served by a
thread of this process that takes one call at a time. Scaling rules: ``start()`` starts
``min_workers``; a call that arrives when there are more queued calls than idle workers
adds a worker, up to ``max_workers``; a worker that found nothing to do for
``idle_seconds`` retires while the pool has more than ``min_workers``. A worker whose
call timed out or whose process died is replaced at once (a fresh process). The pool
tells a *recorder* when a call starts and ends (the service writes the call's row) and
resolves the call's :class:`~concurrent.futures.Future` with the outcome afterwards, so
a caller that waited on the future reads a finished row. A pool with a sandbox starts
every worker in it; the pool's private folder holds the workers' logs and folders.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from twinengine.core import StateError, new_id
from twinengine.core.times import utcnow
from twinengine.events.function_sandbox import FunctionSandbox
from twinengine.events.function_spec import FunctionSpec
from twinengine.events.function_workers import CommandWorker, PythonWorker, outcome

log = logging.getLogger(__name__)
SHUT_DOWN = "the function's pool was shut down"


class Recorder(Protocol):
    """Who hears about calls: the service records them in ``function_calls``."""

    def started(self, call_id: str, started_at: Any) -> None: ...

    def finished(self, call_id: str, outcome: dict[str, Any]) -> None: ...


@dataclass
class Job:
    call_id: str
    input: Any
    timeout: float
    future: Future = field(default_factory=Future)


@dataclass
class _Slot:
    worker: PythonWorker | CommandWorker
    busy: bool = False
    thread: threading.Thread | None = None


class FunctionPool:
    """Worker processes of one function and the queue of its calls."""

    def __init__(
        self,
        spec: FunctionSpec,
        recorder: Recorder | None = None,
        *,
        idle_seconds: float = 30.0,
        sandbox: FunctionSandbox | None = None,
    ) -> None:
        self.spec = spec
        self.recorder = recorder
        self.sandbox = sandbox  # where the workers run (twin serve's sandbox)
        self.idle_seconds = idle_seconds
        self._cond = threading.Condition()
        self._queue: deque[Job] = deque()
        self._slots: list[_Slot] = []
        self._closed = False
        self._label = f"{spec.project}/{spec.name}"  # names are unique within a project
        self._log_dir = Path(tempfile.mkdtemp(prefix=f"twin-fn-{spec.name[:20]}-"))
        self.spawned = 0  # workers added over the pool's life (scaling up adds one)

    # -- what callers use --------------------------------------------------------------
    def start(self) -> FunctionPool:
        """Start ``min_workers`` workers (warm python processes)."""
        with self._cond:
            while len(self._slots) < self.spec.min_workers and not self._closed:
                self._spawn()
        return self

    def submit(self, value: Any, *, call_id: str | None = None, timeout: float | None = None):
        """Queue a call; its future resolves with the outcome dict."""
        job = Job(call_id or new_id(), value, float(timeout or self.spec.timeout))
        with self._cond:
            if self._closed:
                raise StateError(SHUT_DOWN, hint="deploy the function again")
            self._queue.append(job)
            idle = sum(1 for s in self._slots if not s.busy)
            if len(self._queue) > idle and len(self._slots) < self.spec.max_workers:
                self._spawn()
            self._cond.notify()
        return job.future

    def stats(self) -> dict[str, Any]:
        """Workers now, how many are busy, calls waiting, and the workers' process ids."""
        with self._cond:
            return {
                "workers": len(self._slots),
                "busy": sum(1 for s in self._slots if s.busy),
                "queued": len(self._queue),
                "pids": [s.worker.pid for s in self._slots if s.worker.pid is not None],
            }

    def shutdown(self, wait: float = 5.0) -> None:
        """Fail queued calls, kill every worker (and what it runs), free the pool."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            slots = list(self._slots)
            self._cond.notify_all()
        for job in queued:
            self._finish(job, outcome(False, error=SHUT_DOWN), None)
        for slot in slots:
            slot.worker.kill()
        deadline = time.monotonic() + wait
        for slot in slots:
            if slot.thread is not None and slot.thread is not threading.current_thread():
                slot.thread.join(max(0.0, deadline - time.monotonic()))
        shutil.rmtree(self._log_dir, ignore_errors=True)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- workers -------------------------------------------------------------------------
    def _spawn(self) -> None:
        """Add a worker (called with the lock held)."""
        kind = PythonWorker if self.spec.kind == "python" else CommandWorker
        slot = _Slot(kind(self.spec, self._log_dir, self.sandbox))
        slot.thread = threading.Thread(
            target=self._serve, args=(slot,), name=f"fn-{self._label}", daemon=True
        )
        self._slots.append(slot)
        self.spawned += 1
        slot.thread.start()

    def _serve(self, slot: _Slot) -> None:
        try:
            slot.worker.start()  # warm up; a failure is reported by the first call
            while True:
                job = self._next_job(slot)
                if job is None:
                    break
                self._run(slot, job)
                worker = slot.worker
                if not worker.alive and worker.load_error is None and not self._closed:
                    worker.start()  # replace a killed or crashed process at once
                with self._cond:
                    slot.busy = False
        except Exception:  # a bug here must not leave a worker silently dead
            log.exception("worker of function %s failed", self._label)
            with self._cond:
                if slot in self._slots:
                    self._slots.remove(slot)
        finally:
            if self._closed:
                slot.worker.close()
            else:
                slot.worker.stop()

    def _next_job(self, slot: _Slot) -> Job | None:
        """The next queued call, or ``None`` when this worker retires or the pool closed."""
        with self._cond:
            idle_since = time.monotonic()
            while not self._queue and not self._closed:
                left = self.idle_seconds - (time.monotonic() - idle_since)
                if left <= 0:
                    if len(self._slots) > self.spec.min_workers:
                        self._slots.remove(slot)
                        return None
                    idle_since, left = time.monotonic(), self.idle_seconds
                self._cond.wait(left)
            if self._closed:
                if slot in self._slots:
                    self._slots.remove(slot)
                return None
            slot.busy = True
            return self._queue.popleft()

    def _run(self, slot: _Slot, job: Job) -> None:
        started = utcnow()
        if self.recorder is not None:
            try:
                self.recorder.started(job.call_id, started)
            except Exception:
                log.exception("could not record the start of call %s", job.call_id)
        try:
            result = slot.worker.call(job.input, job.timeout)
        except Exception as exc:  # a bug of ours: fail the call rather than leave it hanging
            log.exception("call %s of function %s failed", job.call_id, self._label)
            result = outcome(False, error=f"internal error running the call: {exc!r}")
        if self._closed and not result["ok"]:
            result["error"] = SHUT_DOWN
        self._finish(job, result, started)

    def _finish(self, job: Job, result: dict[str, Any], started: Any) -> None:
        result.setdefault("started_at", started)
        result.setdefault("ended_at", utcnow())
        if self.recorder is not None:
            try:
                self.recorder.finished(job.call_id, result)
            except Exception:
                log.exception("could not record the end of call %s", job.call_id)
        with contextlib.suppress(Exception):  # an already resolved future
            job.future.set_result(result)

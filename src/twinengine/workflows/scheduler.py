"""The scheduler: TwinEngine's own dispatch loop for CWL processes.

One thread drives everything. Work is a queue of small callables (:meth:`Scheduler.soon`);
a tool invocation becomes a :class:`CommandTask` that waits for cores and RAM, is
prepared (:mod:`twinengine.workflows.jobs`), handed to the executor, and finished when
the executor reports it ended. The loop blocks only in ``executor.wait`` — which wakes
the moment any command ends — so a ready step starts immediately and nothing polls.

Besides dispatch, the scheduler owns: resource accounting (never more cores or RAM in
flight than configured; a job asking for more than exists runs alone), retries with
backoff (``twin:Retry``), reuse of succeeded executions (resume and ``--cache``), step
records (batched through :class:`~twinengine.workflows.records.RunRecorder`), step logs
in the object store, cancellation, and progress events for the CLI. A scheduler with a
``sandbox`` (runs of ``twin serve``) gives each command to that sandbox and refuses the
steps it cannot confine (:func:`~twinengine.workflows.confinement.unconfinable`).
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import os
import queue
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twinengine.core import ObjectStore, State, TwinError, new_id
from twinengine.workflows.cache import execution_key, outputs_exist
from twinengine.workflows.confinement import output_roots, unconfinable
from twinengine.workflows.executors.base import Executor, JobResult
from twinengine.workflows.options import Listener
from twinengine.workflows.records import RunRecorder, from_epoch, jsonable, state_of, utcnow
from twinengine.workflows.retry import RetryPolicy, retry_policy

log = logging.getLogger("twinengine.workflows")

Callback = Callable[[dict[str, Any] | None, str], None]


def _cwl_errors() -> tuple[type[Exception], ...]:
    """cwltool's error classes, imported only when a cwltool-loaded process needs them."""
    from cwltool.errors import WorkflowException
    from schema_salad.exceptions import ValidationException

    return WorkflowException, ValidationException


def _unsupported() -> type[Exception]:
    from cwltool.errors import UnsupportedRequirement

    return UnsupportedRequirement


@dataclass
class CommandTask:
    """One tool invocation (one attempt at a time)."""

    path: str
    process: Any
    job_order: dict[str, Any]
    rc: Any
    callback: Callback
    key: str = field(default_factory=new_id)
    attempt: int = 1
    job: Any = None
    cache_key: str | None = None
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    cores: int = 1
    ram_mb: int = 0
    threaded: bool = False
    native: bool = False  # a process of the native loader: its job prepares and finishes itself
    thread_result: tuple[Any, str] | None = None
    started: float = 0.0  # epoch seconds, for jobs run in a thread
    log_paths: tuple[str | None, str | None] = (None, None)
    roots: tuple[str, ...] | None = None  # where a sandboxed command's outputs may lead


class Scheduler:
    """Runs one CWL process (tool or workflow) to completion."""

    def __init__(
        self,
        executor: Executor,
        *,
        cores: int,
        ram_mb: int = 0,
        recorder: RunRecorder | None = None,
        store: ObjectStore | None = None,
        reuse: dict[str, dict[str, Any]] | None = None,
        use_cache: bool = False,
        default_attempts: int = 1,
        listeners: list[Listener] | None = None,
        sandbox: str | None = None,
        last_flush: bool = True,
    ) -> None:
        self.executor = executor
        self.sandbox = sandbox
        self.last_flush = last_flush  # False: the caller writes the last steps with the run's end
        self.cores = max(1, cores)
        self.ram_mb = max(0, ram_mb)
        self.rec = recorder
        self.store = store
        self.reuse = reuse or {}
        self.use_cache = use_cache
        self.default_attempts = default_attempts
        self.listeners = listeners or []
        self.stopping = False
        self.cancelled = False
        self._cancel_flag = threading.Event()
        self._soon: collections.deque[Callable[[], None]] = collections.deque()
        self._queue: collections.deque[CommandTask] = collections.deque()
        self._running: dict[str, CommandTask] = {}
        self._threads_done: queue.SimpleQueue[CommandTask] = queue.SimpleQueue()
        self._threads = 0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cores_used = 0
        self._ram_used = 0
        self._last_cancel_check = 0.0
        self._log_dir: str | None = None

    # -- public -------------------------------------------------------------------
    def run(self, process: Any, job_order: dict[str, Any], rc: Any) -> tuple[Any, str]:
        """Execute ``process`` on ``job_order``; returns ``(outputs, status)``."""
        result: list[tuple[Any, str]] = []
        root = _short(process.tool.get("id", "main"))
        self.soon(
            lambda: self.start_process(
                process, job_order, rc, root, lambda out, st: result.append((out, st))
            )
        )
        try:
            self._loop(lambda: bool(result))
        finally:
            if self.rec is not None and self.last_flush:
                self.rec.flush()
        if self.cancelled:
            return (result[0][0] if result else None), "cancelled"
        return result[0]

    def soon(self, fn: Callable[[], None]) -> None:
        self._soon.append(fn)

    def request_cancel(self) -> None:
        """Stop the run: running commands are killed, nothing new starts (thread-safe)."""
        self._cancel_flag.set()

    def start_process(
        self, process: Any, job_order: dict[str, Any], rc: Any, path: str, callback: Callback
    ) -> None:
        native = getattr(process, "native", False)
        if process.tool["class"] == "Workflow":
            if native:
                process.start(self, job_order, rc, path, callback)
                return
            from twinengine.workflows.walker import WorkflowInstance

            instance = WorkflowInstance(self, process, job_order, rc, path, callback)
            try:
                instance.start()
            except _unsupported():
                raise
            except _cwl_errors() as exc:
                log.error("[%s] %s", path, exc)
                callback({}, "permanentFail")
            return
        task = CommandTask(path, process, job_order, rc, callback, native=native)
        task.policy = retry_policy(process, self.default_attempts)
        self._make_job(task)

    def record_skipped(self, path: str) -> None:
        if self.rec is not None:
            now = utcnow()
            self.rec.step(
                new_id(), name=path, state=State.SKIPPED.value, created_at=now, ended_at=now
            )
        self._emit("skipped", path, State.SKIPPED.value)

    # -- task life cycle ----------------------------------------------------------
    def _emit(self, event: str, path: str, state: str) -> None:
        for listener in self.listeners:
            listener(event, path, state)

    def _reusable(self, task: CommandTask) -> dict[str, Any] | None:
        work_reuse, _ = task.process.get_requirement("WorkReuse")
        if work_reuse and not work_reuse.get("enableReuse", True):
            return None
        hit = self.reuse.get(task.cache_key or "")
        if hit is None and self.use_cache and self.rec is not None and task.cache_key:
            hit = self.rec.lookup_cache(task.cache_key)
        if hit is not None and hit.get("outputs") is not None and outputs_exist(hit["outputs"]):
            return hit
        return None

    def _make_job(self, task: CommandTask) -> None:
        if self.stopping:
            task.callback({}, "permanentFail")
            return
        if self.rec is not None or self.reuse:
            task.cache_key = execution_key(task.process, task.job_order)
        hit = self._reusable(task) if task.cache_key else None
        if hit is not None:
            now = utcnow()
            self._record_new(
                task,
                State.SUCCEEDED,
                started_at=now,
                ended_at=now,
                outputs=hit["outputs"],
                reused_from=hit["id"],
                message="reused a previous execution",
            )
            log.info("[%s] reused outputs of step execution %s", task.path, hit["id"])
            self._emit("reused", task.path, State.SUCCEEDED.value)
            task.callback(jsonable(hit["outputs"]), "success")
            return
        refused = unconfinable(task.process, task.path) if self.sandbox else None
        if refused:
            self._fail_unstarted(task, refused)
            return
        if task.native:
            try:
                task.job = task.process.make_job(task.job_order, task.rc)
            except TwinError as exc:
                self._fail_unstarted(task, f"cannot make job: {exc}")
                return
            self._record_new(task, State.QUEUED)
            cores, ram = task.job.cores, task.job.ram_mb
        else:
            from twinengine.workflows.jobs import (
                is_inline_job,
                is_plain_command_job,
                requested_resources,
            )

            try:
                task.job = next(
                    task.process.job(task.job_order, self._thread_callback(task), task.rc)
                )
            except _unsupported():
                raise
            except _cwl_errors() as exc:
                self._fail_unstarted(task, f"cannot make job: {exc}")
                return
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                # cwltool trusts what an expression built (a secondaryFiles File without a
                # basename …): a malformed value fails the step, not the whole run
                self._fail_unstarted(
                    task,
                    f"cannot make job: a value an expression built is malformed "
                    f"({type(exc).__name__}: {exc}); a File or Directory needs class, "
                    "location and basename",
                )
                return
            self._record_new(task, State.QUEUED)
            if is_inline_job(task.job):
                self._run_inline(task)
                return
            cores, ram = requested_resources(task.job)
            task.threaded = not is_plain_command_job(task.job)
            if task.threaded and self.sandbox:  # cwltool's own runner: not confinable
                self._fail_unstarted(task, unconfinable(task.process, task.path, task.job) or "")
                return
        task.cores = min(self.cores, cores)  # more than exists: clamp, and it runs alone
        task.ram_mb = min(self.ram_mb, ram) if self.ram_mb else 0
        self._queue.append(task)
        self._emit("queued", task.path, State.QUEUED.value)

    def _record_new(self, task: CommandTask, state: State, **values: Any) -> None:
        """First record of a step execution (buffered)."""
        if self.rec is None:
            return
        self.rec.step(
            task.key,
            name=task.path,
            tool=task.process.tool.get("id"),
            kind=task.process.tool["class"],
            cache_key=task.cache_key,
            state=state.value,
            attempt=task.attempt,
            created_at=values.pop("created_at", None) or utcnow(),
            inputs=task.job_order if task.native else jsonable(task.job_order),
            **values,
        )

    def _thread_callback(self, task: CommandTask) -> Callback:
        def receive(outputs: dict[str, Any] | None, status: str) -> None:
            task.thread_result = (outputs, status)

        return receive

    def _run_inline(self, task: CommandTask) -> None:
        started = time.time()
        self._record_start(task, started)
        task.job.run(task.rc)
        outputs, status = task.thread_result or ({}, "permanentFail")
        self._finish(
            task, outputs or {}, status, None, JobResult(task.key, 0, started, time.time())
        )

    def _fail_unstarted(self, task: CommandTask, message: str, quiet: bool = False) -> None:
        (log.debug if quiet else log.error)("[%s] %s", task.path, message)
        now = utcnow()
        self._record_new(task, State.FAILED, created_at=now, ended_at=now, message=message)
        self._emit("finished", task.path, State.FAILED.value)
        self._stop_on_error(task.rc)
        task.callback({}, "permanentFail")

    def _record_start(self, task: CommandTask, started: float, argv: Any = None) -> None:
        if self.rec is not None:
            self.rec.step(
                task.key,
                state=State.RUNNING.value,
                started_at=from_epoch(started),
                command_line=argv,
                attempt=task.attempt,
                outdir=getattr(task.job, "outdir", None),
                stdout_uri=task.log_paths[0],
                stderr_uri=task.log_paths[1],
            )
        self._emit("started", task.path, State.RUNNING.value)

    def _log_paths(self, task: CommandTask) -> tuple[str | None, str | None]:
        if self.store is None or self.rec is None:
            return None, None
        if self.store.is_local:
            if self._log_dir is None:
                self._log_dir = _local_logs(self.store, self.rec.run_id)
            base = f"{self._log_dir}/{task.key}"
            return base + ".stdout", base + ".stderr"
        if self._log_dir is None:  # staged locally, uploaded when the step ends
            self._log_dir = tempfile.mkdtemp(prefix=f"twin-logs-{self.rec.run_id}-")
        base = f"{self._log_dir}/{task.key}"
        return base + ".stdout", base + ".stderr"

    def _fits(self, task: CommandTask) -> bool:
        if self._cores_used + task.cores > self.cores:
            return False
        return not (self.ram_mb and self._ram_used + task.ram_mb > self.ram_mb)

    def _dispatch(self) -> None:
        if not self._queue:
            return
        if self.stopping:
            dropped = len(self._queue)
            while self._queue:
                self._fail_unstarted(
                    self._queue.popleft(), "not started: the run is stopping", quiet=True
                )
            log.warning("%d queued step(s) not started because the run is stopping", dropped)
            return
        pending = self._queue
        while pending and self._cores_used < self.cores:
            if self._fits(pending[0]):
                self._start(pending.popleft())
                continue
            # backfill: a smaller job a little further down the queue may fit now
            for index in range(1, min(len(pending), 32)):
                if self._fits(pending[index]):
                    task = pending[index]
                    del pending[index]
                    self._start(task)
                    break
            else:
                break

    def _start(self, task: CommandTask) -> None:
        self._cores_used += task.cores
        self._ram_used += task.ram_mb
        self._running[task.key] = task
        if task.threaded:
            self._start_thread(task)
            return
        try:
            task.log_paths = self._log_paths(task)
            if task.native:
                spec = task.job.prepare(
                    task.key, *task.log_paths, task.cores, task.ram_mb, self.sandbox
                )
            else:
                from twinengine.workflows.jobs import prepare_command

                spec = prepare_command(
                    task.job, task.rc, task.key, *task.log_paths, task.cores, task.ram_mb,
                    self.sandbox,
                )  # fmt: skip
            task.roots = output_roots(spec)
        except (TwinError, OSError, *_cwl_errors()) as exc:
            self._release(task)
            self._fail_unstarted(task, f"cannot stage the job: {exc}")
            return
        self._record_start(task, time.time(), spec.argv)
        self.executor.submit(spec)

    def _start_thread(self, task: CommandTask) -> None:
        """Jobs TwinEngine does not run itself (containers …) use cwltool's own runner."""
        self._threads += 1
        task.started = time.time()
        self._record_start(task, task.started, [str(x) for x in task.job.command_line])

        def work() -> None:
            try:
                task.job.run(task.rc)
            except Exception as exc:
                log.error("[%s] %s", task.path, exc)
                task.thread_result = ({}, "permanentFail")
            self._threads_done.put(task)

        threading.Thread(target=work, name=f"twin-{task.key}", daemon=True).start()

    def _complete_threads(self) -> None:
        while not self._threads_done.empty():
            task = self._threads_done.get()
            self._threads -= 1
            self._release(task)
            outputs, status = task.thread_result or ({}, "permanentFail")
            code = 0 if status == "success" else 1
            result = JobResult(task.key, code, task.started, time.time())
            self._finish(task, outputs or {}, status, None, result)

    def _release(self, task: CommandTask) -> None:
        self._running.pop(task.key, None)
        self._cores_used -= task.cores
        self._ram_used -= task.ram_mb

    def _complete(self, result: JobResult) -> None:
        task = self._running.get(result.key)
        if task is None:
            return
        self._release(task)
        if self._queue:  # start the next ready job first: its slot need not wait for this one
            self._dispatch()
        if task.native:
            outputs, status, message = task.job.finish(result)
        else:
            from twinengine.workflows.jobs import finish_command

            outputs, status, message = finish_command(task.job, result, task.roots)
        self._upload_logs(task)
        if (
            status != "success"
            and not result.cancelled
            and not self.stopping
            and task.attempt < task.policy.max_attempts
        ):
            delay = task.policy.delay(task.attempt)
            log.warning(
                "[%s] attempt %d failed (%s); retrying in %.1f s",
                task.path,
                task.attempt,
                message,
                delay,
            )
            if self.rec is not None:
                self.rec.step(
                    task.key,
                    state=State.FAILED.value,
                    ended_at=utcnow(),
                    exit_code=result.exit_code,
                    wall_time=result.wall_time,
                    peak_memory=result.peak_memory,
                    message=f"{message}; retried",
                )
            retry = CommandTask(
                task.path, task.process, task.job_order, task.rc, task.callback,
                attempt=task.attempt + 1, policy=task.policy, native=task.native,
            )  # fmt: skip
            self._later(delay, lambda: self._make_job(retry))
            return
        if result.cancelled:
            message = "cancelled"
        self._finish(task, outputs, status, message, result)

    def _upload_logs(self, task: CommandTask) -> None:
        if self.store is None or self.store.is_local or self.rec is None:
            return
        base = f"runs/{self.rec.run_id}/logs/{task.key}"
        for local, suffix in zip(task.log_paths, ("stdout", "stderr"), strict=True):
            if local and os.path.exists(local):
                self.store.put_file(local, f"{base}.{suffix}")
                os.unlink(local)

    def _finish(
        self,
        task: CommandTask,
        outputs: dict[str, Any],
        status: str,
        message: str | None,
        result: JobResult,
    ) -> None:
        state = state_of(status, cancelled=message == "cancelled")
        if self.rec is not None:
            self.rec.step(
                task.key,
                state=state.value,
                ended_at=from_epoch(result.ended_at),
                exit_code=result.exit_code,
                wall_time=result.wall_time,
                peak_memory=result.peak_memory,
                outputs=(outputs if task.native else jsonable(outputs))
                if state == State.SUCCEEDED
                else None,
                message=message,
            )
        if state == State.FAILED:
            tail = self._stderr_tail(task)
            log.error(
                "[%s] failed: %s%s",
                task.path,
                message or status,
                f"\n--- last lines of stderr ---\n{tail}" if tail else "",
            )
            self._stop_on_error(task.rc)
        self._emit("finished", task.path, state.value)
        task.callback(outputs, status)

    def _stderr_tail(self, task: CommandTask, lines: int = 20) -> str:
        path = task.log_paths[1]
        if task.job is not None and getattr(task.job, "stderr", None):
            path = os.path.join(task.job.outdir, task.job.stderr)
            if task.roots is not None:  # the tool's folder: no link of its is followed
                outdir = os.path.realpath(task.job.outdir)
                if not os.path.realpath(os.path.dirname(path)).startswith(outdir):
                    return ""
        if not path or not os.path.exists(path):
            return ""
        try:  # never blocking on a named pipe the tool left in its stream's place
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            return ""
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return ""
        with open(fd, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            text = handle.read().decode("utf-8", errors="replace")
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def _stop_on_error(self, rc: Any) -> None:
        if (rc.on_error or "stop") == "stop":
            self.stopping = True

    # -- the loop -----------------------------------------------------------------
    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), fn))

    def _check_cancel(self) -> None:
        now = time.monotonic()
        if (
            not self._cancel_flag.is_set()
            and self.rec is not None
            and now - self._last_cancel_check > 0.5
        ):
            self._last_cancel_check = now
            if self.rec.cancel_requested():
                self._cancel_flag.set()
        if self._cancel_flag.is_set() and not self.cancelled:
            log.warning("cancelling the run: stopping %d running step(s)", len(self._running))
            self.cancelled = True
            self.stopping = True
            for key in list(self._running):
                self.executor.cancel(key)

    def _loop(self, done: Callable[[], bool]) -> None:
        while not done():
            budget = 64
            while self._soon and budget:
                self._soon.popleft()()
                budget -= 1
                if self._queue and self._cores_used < self.cores:
                    self._dispatch()
            self._dispatch()
            if done():
                break
            self._check_cancel()
            now = time.monotonic()
            while self._timers and self._timers[0][0] <= now:
                heapq.heappop(self._timers)[2]()
            if self._soon:
                timeout = 0.0
            else:
                timeout = 0.5
                if self._timers:
                    timeout = min(timeout, max(0.0, self._timers[0][0] - now))
                if self._threads:
                    timeout = min(timeout, 0.02)
            if self.executor.running():
                for result in self.executor.wait(timeout):
                    self._complete(result)
            elif not self._soon and not self._threads and not self._timers and not self._queue:
                if done():
                    break
                raise RuntimeError("internal error: the scheduler has nothing left to do")
            elif timeout:
                time.sleep(timeout if not self._threads else 0.005)
            self._complete_threads()
            if self.rec is not None:
                self.rec.maybe_flush()


_RUNS_FOLDERS: dict[str, str] = {}  # a local store's URL -> its runs folder, links resolved


def _local_logs(store: ObjectStore, run_id: str) -> str:
    """The run's log folder in a local store (made): ``runs/RUN/logs``. The store's runs
    folder is found once per process; a run id of letters and digits cannot leave it."""
    if not run_id.isalnum():
        return str(store.local_folder(f"runs/{run_id}/logs"))
    runs = _RUNS_FOLDERS.get(store.url)
    if runs is None:
        runs = _RUNS_FOLDERS[store.url] = str(store.local_folder("runs"))
    folder = os.path.join(runs, run_id, "logs")
    os.makedirs(folder, exist_ok=True)
    return folder


def _short(tool_id: str) -> str:
    name = tool_id.rsplit("#", 1)[-1] if "#" in tool_id else tool_id.rsplit("/", 1)[-1]
    return name or "main"

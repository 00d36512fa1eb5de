"""The run dispatcher of ``twin serve``: queue runs in the database, run each in a child.

:meth:`RunDispatcher.submit` writes a run record in state ``queued`` (with its project,
registered workflow and user) and its job file (through
:class:`~twinengine.workflows.runqueue.RunQueue`, which owns those writes), and returns
at once. A background
thread starts queued runs, oldest first, as child processes (``twin-cwl-runner`` with
``--queued-run``, which adopts the record) while fewer than ``max_runs`` are running,
and reaps them. Because the queue is the ``runs`` table, a server restart loses
nothing: runs still queued start when the next server comes up, runs whose child is
alive keep running, and a child that dies before recording its end leaves the run
``failed`` with the tail of its log. Resumed runs go through the same queue.

Every run it starts is confined: the dispatcher settles the server's sandbox once
(:func:`~twinengine.workflows.sandbox.server_sandbox`) and hands its name to each run
process (``--sandbox``, ``TWIN_SANDBOX``), with ``--no-container`` (a served step never
starts a container of cwltool's).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from twinengine.core import Database, Settings, TwinError, get_database, get_settings
from twinengine.workflows.children import child_env, exit_code_of, kill_group
from twinengine.workflows.inprocess import NativeDocuments
from twinengine.workflows.runqueue import RunQueue, RunRequest, main_document
from twinengine.workflows.runs import WATCHED, RunStore
from twinengine.workflows.runworker import NOT_NATIVE, RunWorkerPool
from twinengine.workflows.sandbox import server_sandbox

log = logging.getLogger(__name__)
_TICK = 0.25


class RunDispatcher:
    """Queue runs and execute them in child processes, at most ``max_runs`` at once."""

    def __init__(
        self,
        settings: Settings | None = None,
        db: Database | None = None,
        inprocess: bool = True,
    ) -> None:
        self.settings = settings or get_settings()
        self.db = db or get_database(self.settings)
        self.max_runs = self.settings.max_runs or max(2, self.settings.cores)
        self.sandbox = server_sandbox(self.settings, strict=False)  # `twin serve` was strict
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.threads: set[str] = set()  # runs executing in this process
        self.documents = NativeDocuments()  # which queued runs a run worker can take
        # native runs go to warm worker processes, one per core
        self.pool = None
        if inprocess:
            count = max(1, self.settings.cores)
            threads = max(1, -(-self.max_runs // count))
            self.pool = RunWorkerPool(
                self.settings, count, threads, self._thread_done, self.sandbox.name
            )
        self.started_total = 0
        self._host = socket.gethostname()
        self.queue = RunQueue(self.db, str(self.settings.runs_dir))
        self._waiting = True  # queued runs may wait for room (a run ending wakes the queue)
        self._direct: dict[str, tuple[str, str, bool]] = {}  # queued with direct=True
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # -- queueing -----------------------------------------------------------------
    def submit(
        self,
        workflow: dict[str, Any],
        job: dict[str, Any],
        *,
        created_by: str | None,
        name: str | None = None,
        cache: bool = False,
        given: dict[str, Any] | None = None,
        conn: Any = None,
        direct: bool = False,
    ) -> str:
        """Queue a run of the registered ``workflow`` with the resolved ``job``; its id.
        ``given`` is the input object as the user wrote it (kept as the run's job order).
        ``conn``: insert inside the caller's transaction. ``direct``: a native-path run
        is recorded as taken by this server at once; after committing, the caller hands
        it to a run worker with :meth:`start_direct` (no trip through the queue)."""
        request = RunRequest(workflow, job, created_by, name, cache, given)
        return self.submit_many([request], conn=conn, direct=direct)[0]

    def submit_many(
        self, requests: list[RunRequest], conn: Any = None, direct: bool = False
    ) -> list[str]:
        """:meth:`submit` for several runs, inserted with one statement; their ids."""
        rows = [self._queued(request, direct) for request in requests]
        ids = [row["id"] for row in rows]
        try:  # with conn: the caller commits, then calls start_direct (which wakes the queue)
            self.queue.insert(rows, conn)
        except BaseException:
            self.start_direct(ids, committed=False)
            raise
        if conn is None and any(run_id not in self._direct for run_id in ids):
            self._wake.set()  # the queue has a run to start
        return ids

    def _queued(self, request: RunRequest, direct: bool) -> dict[str, Any]:
        """The run record of a request, with its folder and job file made; a native-path
        run queued ``direct`` is recorded as taken by this server."""
        workflow = request.workflow
        main = main_document(workflow["folder"], workflow["main"])
        here = direct and self.pool is not None and self.documents.load(main) is not None
        row = self.queue.row_of(request, main, (os.getpid(), self._host) if here else None)
        if here:
            self._direct[row["id"]] = (main, row["work_dir"], request.cache)
        return row

    def start_direct(self, run_ids: list[str], committed: bool = True) -> None:
        """After the caller's transaction committed, hand its runs queued with
        ``direct=True`` to the run workers, and wake the queue for the others;
        ``committed=False``: the transaction rolled back, forget them."""
        for run_id in run_ids:
            entry = self._direct.pop(run_id, None)
            if entry is None and committed:
                self._wake.set()  # not taken here: the queue starts it
            if entry is None or not committed or self.pool is None:
                continue
            main, run_dir, cache = entry
            with self._lock:
                self._to_worker(run_id, main, Path(run_dir), cache)

    def requeue(self, run_id: str) -> None:
        """Queue a resumable (interrupted, failed, cancelled) run to continue."""
        RunStore(self.db).reopen(run_id)
        self.queue.requeue(run_id)
        self._wake.set()

    def cancel_queued(self, run_id: str) -> bool:
        """Cancel a run that has not started yet; False when it already has a process."""
        return self.queue.cancel(run_id)

    def queue_length(self) -> int:
        return self.queue.length()

    # -- the loop -----------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="twin-dispatch", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for run_id in list(self.threads):  # in-process runs stop with the server
            try:
                RunStore(self.db).cancel(run_id)
            except TwinError:
                pass  # it ended meanwhile
        if self.pool is not None:
            self.pool.shutdown()

    def running(self) -> int:
        return len(self.children) + len(self.threads)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must survive a database hiccup
                log.exception("dispatcher tick failed")
            self._wake.wait(_TICK)
            self._wake.clear()

    def tick(self) -> None:
        """Reap finished children and start queued runs while there is room."""
        with self._lock:
            for run_id, child in list(self.children.items()):
                code = exit_code_of(child)
                if code is not None:  # record the end first, then reap and unwatch
                    self._reaped(run_id, code, pid=child.pid)
                    child.poll()
                    del self.children[run_id]
                    WATCHED.discard(run_id)
            room = self.max_runs - len(self.children) - len(self.threads)
            if room <= 0:
                self._waiting = True  # unknown: a run that ends looks again at once
                return
            queued = self.queue.oldest(room)
            self._waiting = len(queued) >= room  # more may wait than there was room for
            for row in queued:
                if row.id not in self.children and row.id not in self.threads:
                    self._launch(row)  # else: resumed before its last process was reaped

    def _launch(self, row: Any) -> None:
        run_dir = self.settings.runs_dir / row.id
        run_dir.mkdir(parents=True, exist_ok=True)
        options = row.options or {}
        if (
            row.started_at is None
            and self.pool is not None
            and not options.get("no_worker")
            and self.documents.load(row.workflow) is not None  # the worker reads the job
        ):
            self._launch_here(row, run_dir, options)
            return
        if row.started_at is None:
            command = [
                sys.executable,
                "-m",
                "twinengine.workflows.cwlrunner",
                "--queued-run",
                row.id,
                "--outdir",
                str(run_dir / "outputs"),
                "--quiet",
                "--sandbox",
                self.sandbox.name,
                "--no-container",
                *(["--cache"] if options.get("cache") else []),
                row.workflow,
                str(run_dir / "job.json"),
            ]
        else:
            command = [sys.executable, "-m", "twinengine.workflows.children", "resume", row.id]
            command.append(self.sandbox.name)
        env = child_env(self.settings, TWIN_SANDBOX=self.sandbox.name)
        WATCHED.add(row.id)  # before its pid is written: see RunStore._reconcile
        with open(run_dir / "driver.log", "ab") as logfile:
            child = subprocess.Popen(
                command,
                cwd=run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        claimed = self.queue.claim(row.id, child.pid, socket.gethostname())
        if not claimed:  # cancelled (or taken) since it was read: the child never begins
            kill_group(child)
            WATCHED.discard(row.id)
            return
        self.children[row.id] = child
        self.started_total += 1

    def _launch_here(self, row: Any, run_dir: Path, options: dict[str, Any]) -> None:
        """Claim a native-path run for this server and send it to a run worker."""
        claimed = self.queue.claim(
            row.id, os.getpid(), socket.gethostname(), options={**options, "inprocess": True}
        )
        if claimed:  # else: another dispatcher took it
            self._to_worker(row.id, row.workflow, run_dir, bool(options.get("cache")))

    def _to_worker(self, run_id: str, document: str, run_dir: Path, cache: bool) -> None:
        """Count a run as executing here and send it to a run worker."""
        assert self.pool is not None
        self.threads.add(run_id)
        self.started_total += 1
        self.pool.submit(
            run_id, document, str(run_dir / "job.json"), str(run_dir / "outputs"), cache
        )

    def _thread_done(self, run_id: str, code: int, message: str) -> None:
        with self._lock:
            self.threads.discard(run_id)
            if code == NOT_NATIVE:  # a worker could not take it: a child process will
                self.queue.hand_back(run_id)
            elif message:  # it raised: the run may not have recorded its end
                self._reaped(run_id, code, message)
            if code == NOT_NATIVE or self._waiting:  # else the next tick is soon enough
                self._wake.set()

    def _reaped(
        self, run_id: str, code: int, message: str | None = None, pid: int | None = None
    ) -> None:
        """A child ended without recording the end of its run (killed early, or failed
        before the run began): the run is cancelled if that was asked, else failed with
        the tail of the child's log as the reason. ``pid``: the child's; a run resumed
        since (queued again, or taken by a new process) is left alone."""
        if not message:
            try:
                tail = (self.settings.runs_dir / run_id / "driver.log").read_bytes()[-2000:]
            except OSError:
                tail = b""
            message = tail.decode("utf-8", "replace").strip()
        message = message or f"the run process exited with {code}"
        self.queue.end_unrecorded(run_id, code, message, pid)

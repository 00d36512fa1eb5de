"""The life of one run, whichever loader produced its process.

A :class:`RunSession` creates the run record (or adopts it on resume), prepares the
run's folders (``TWIN_HOME/runs/RUN/{work,tmp}``), builds the executor and the
:class:`~twinengine.workflows.scheduler.Scheduler` (with the reusable steps of a resumed
run), installs the signal handlers that turn Ctrl-C into a clean cancel, and stores the
final state. Both the cwltool-backed path (:mod:`twinengine.workflows.cwlexec`) and the
native path (:mod:`twinengine.workflows.native`) run through it, so runs look the same
in the database whichever path ran them. A run with a sandbox (every run of ``twin
serve``) gives it to the scheduler, which confines each command in it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from twinengine.core import (
    ObjectStore,
    Settings,
    State,
    StateError,
    get_settings,
    get_store,
    new_id,
)
from twinengine.core.hashing import file_sha256
from twinengine.core.programs import own_bin_on_path
from twinengine.workflows.executors import make_executor
from twinengine.workflows.options import RunOptions
from twinengine.workflows.records import RunRecorder, state_of
from twinengine.workflows.recordstore import open_record_store
from twinengine.workflows.sandbox import run_sandbox
from twinengine.workflows.scheduler import Scheduler
from twinengine.workflows.scratch import tidy, tidy_later

log = logging.getLogger("twinengine.workflows")


_HASHES: dict[tuple[str, int, int, int, int], str] = {}  # (path, inode, size, times)


def file_hash(path: str) -> str | None:
    """SHA-256 of a file's bytes, or None when it cannot be read. A long-lived process
    (a run worker) hashes a document once per version of the file — known by its inode,
    size, modification and change times, as the loaded documents it runs are."""
    try:
        info = os.stat(path)
        key = (path, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        digest = _HASHES.get(key)
        if digest is None:
            digest = file_sha256(path)
            if len(_HASHES) >= 256:
                _HASHES.clear()
            _HASHES[key] = digest
        return digest
    except OSError:
        return None


_STORES: dict[str, ObjectStore] = {}


def _object_store(settings: Settings) -> ObjectStore:
    """The object store of ``settings``, made once per store URL in a process."""
    store = _STORES.get(settings.store)
    if store is None:
        store = _STORES[settings.store] = get_store(settings)
    return store


class RunSession:
    """One run: its record, folders, executor, scheduler and final state."""

    def __init__(
        self,
        options: RunOptions,
        *,
        workflow: str,
        job_order: Any,
        outdir: str | None,
        settings: Settings | None = None,
    ) -> None:
        own_bin_on_path()  # steps that call `twin` find it (see twinengine.core.programs)
        self.options = options
        self.settings = settings or get_settings()
        self.workflow = workflow
        self.job_order = job_order
        self.outdir = os.path.abspath(outdir) if outdir else None
        self.resumed = options.resume is not None
        self.run_id = options.resume or options.run_id or new_id()
        self.run_dir: Path = self.settings.runs_dir / self.run_id
        self.recorder: RunRecorder | None = None
        self.scheduler: Scheduler | None = None
        self.keep_work = options.cache
        # the sandbox every command runs in: the server's (its name travels with the run),
        # or what `twin run --sandbox NAME` asked for; None: commands run plainly
        self.sandbox = options.sandbox = run_sandbox(options.sandbox, self.settings)

    @property
    def work_dir(self) -> Path:
        return self.run_dir / "work"

    @property
    def tmp_dir(self) -> Path:
        return self.run_dir / "tmp"

    def begin(self) -> RunRecorder:
        """Create (or adopt, on resume) the run record and the run's folders."""
        records = open_record_store(self.settings, keep=self.options.inprocess)
        opts = self.options
        adopted: dict[str, Any] = {}
        if self.resumed:
            self.recorder = RunRecorder(records, self.run_id)
            self.recorder.adopt_existing_steps()
        elif opts.adopt:  # queued by `twin serve`: the record exists, fill in how it runs
            self.recorder = RunRecorder(records, self.run_id)
            if not records.run_exists(self.run_id):
                raise StateError(f"no queued run {self.run_id} to start")
            adopted = {  # written with the start, in one update
                "workflow": self.workflow,
                "workflow_hash": file_hash(self.workflow),
                "outdir": self.outdir,
                "work_dir": str(self.run_dir),
                "executor": opts.executor or self.settings.executor,
                "options": opts.record(),
            }
        else:
            self.recorder = RunRecorder.create_run(
                records,
                run_id=self.run_id,
                name=opts.name or os.path.basename(self.workflow) or "run",
                workflow=self.workflow,
                workflow_hash=file_hash(self.workflow),
                job_order=self.job_order,
                outdir=self.outdir,
                work_dir=str(self.run_dir),
                executor=opts.executor or self.settings.executor,
                options=opts.record(),
            )
        if opts.on_run:
            opts.on_run(self.run_id)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.recorder.run_started(self.job_order, self.resumed, **adopted)
        return self.recorder

    def make_scheduler(self) -> Scheduler:
        settings, opts = self.settings, self.options
        cores = opts.cores or settings.cores
        ram_mb = opts.ram_mb if opts.ram_mb is not None else settings.ram_mb
        name = opts.executor or settings.executor
        extra: dict[str, Any] = {}
        if name == "dask":
            extra["address"] = opts.dask_address or settings.dask_address
        executor = make_executor(name, cores=cores, ram_mb=ram_mb, **extra)
        assert self.recorder is not None, "begin() first"
        reuse = self.recorder.reusable_steps() if self.resumed else {}
        self.scheduler = Scheduler(
            executor,
            cores=cores,
            ram_mb=ram_mb,
            recorder=self.recorder,
            store=_object_store(settings),
            reuse=reuse,
            use_cache=opts.cache,
            default_attempts=max(1, opts.retries),
            listeners=opts.listeners,
            sandbox=self.sandbox,
            last_flush=False,  # finish() and fail() write the last steps with the run's end
        )
        return self.scheduler

    @contextmanager
    def executing(self) -> Iterator[Scheduler]:
        """The scheduler, with its executor started and Ctrl-C/SIGTERM meaning cancel."""
        scheduler = self.scheduler or self.make_scheduler()
        restore = _install_signal_handlers(scheduler)
        scheduler.executor.start()
        try:
            yield scheduler
        finally:
            scheduler.executor.close()
            restore()

    def fail(self, state: State, error: str, exit_code: int = 1) -> None:
        if self.recorder is not None:
            self.recorder.run_finished(state, error=error, exit_code=exit_code)
            self._provenance_now()
            self._close_records()

    def _close_records(self) -> None:
        if self.recorder is not None and not self.options.inprocess:  # kept: see begin()
            self.recorder.store.close()

    def _provenance_now(self) -> None:
        """The cwltool path records its PROV document as it ends: its records do not carry
        file digests, so the files are hashed before the work folders go. The native path
        records digests as it reads files, and its document is made on first use
        (:meth:`twinengine.provenance.ProvStore.ensure_captured`), off the run's time."""
        if self.options.loader != "native":
            self.record_provenance()

    def record_provenance(self) -> None:
        """Capture the run's PROV document from its records (before folders are tidied).

        A failure here is reported and does not fail the run: the records it is made
        from are stored, and ``twin prov capture RUN_ID`` can make it again.
        """
        from twinengine.provenance.capture import record_run

        assert self.recorder is not None
        try:
            record_run(self.recorder.store, self.run_id)
        except Exception as exc:
            log.warning("provenance of run %s was not recorded: %s", self.run_id, exc)

    def finish(self, outputs: Any, status: str) -> State:
        """Store the final state; on success remove the intermediate folders."""
        state = state_of(status)
        assert self.recorder is not None
        self.recorder.run_finished(
            state,
            outputs=outputs,
            error=None if state == State.SUCCEEDED else f"final process status is {status}",
            exit_code=0 if state == State.SUCCEEDED else 1,
        )
        self._provenance_now()
        self._close_records()
        if state == State.SUCCEEDED and not self.keep_work:
            folders: list[Path | str] = [self.work_dir, self.tmp_dir]
            (tidy_later if self.options.inprocess else tidy)(self.settings.home / "spare", folders)
        return state


def _install_signal_handlers(scheduler: Scheduler) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum: int, _frame: Any) -> None:
        scheduler.request_cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore

"""Queued runs executed inside the server process: the native path, no child interpreter.

A run started by ``twin serve`` (or by an event trigger) would otherwise pay for a new
Python interpreter and TwinEngine's imports — about 0.2 s of CPU — before its first
step. :class:`InProcessRunner` runs documents the native path understands
(:mod:`twinengine.workflows.native`) on a pool of threads in the server, with each
loaded document kept in memory (keyed by path and modification time), so a one-step run
starts within milliseconds of being queued. Everything else — cwltool documents,
resumes — still goes to a child process. In-process runs record the server's pid and
``options.inprocess``; they are cancelled through the ``cancel_requested`` flag (which
their scheduler polls), never by a signal, and a server that dies leaves them
``interrupted`` like any run whose process ended.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from twinengine.core import Settings, TwinError
from twinengine.workflows.options import RunOptions

log = logging.getLogger(__name__)


class NativeDocuments:
    """Documents loaded by the native path, kept by path and modification time (the
    dispatcher asks whether a run is native; a run worker runs it)."""

    def __init__(self) -> None:
        self._documents: dict[tuple[str, int], Any] = {}
        self._lock = threading.Lock()

    def load(self, document: str) -> Any | None:
        """The loaded native process of ``document`` (cached), or None: not native."""
        from twinengine.workflows.native import NotNative, load_native

        try:
            key = (document, os.stat(document).st_mtime_ns)
        except OSError:
            return None
        with self._lock:
            if key in self._documents:
                return self._documents[key]
        try:
            process = load_native(document)
        except (NotNative, TwinError, OSError, ValueError):
            process = None
        if process is not None and process.docker_hint:
            process = None  # whether a container engine honours it is the child's call
        with self._lock:
            if len(self._documents) > 256:
                self._documents.clear()
            self._documents[key] = process
        return process


class InProcessRunner:
    """Run queued native-path runs on ``workers`` threads of this process."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="twin-run")
        self.documents = NativeDocuments()

    def prepare(self, document: str, job_file: str) -> tuple[Any, dict[str, Any]] | None:
        """``(process, job)`` when the native path can run this run; None otherwise."""
        from twinengine.workflows.native import NotNative, read_job

        process = self.documents.load(document)
        if process is None:
            return None
        try:
            return process, read_job(process, job_file, confined=True)
        except (NotNative, TwinError, OSError, ValueError):
            return None

    def submit(
        self,
        run_id: str,
        prepared: tuple[Any, dict[str, Any]],
        *,
        document: str,
        outdir: str,
        cache: bool,
        done: Callable[[str, int, str], None],
    ) -> Future[int]:
        """Execute the queued run ``run_id``; ``done(run_id, exit code, message)`` after."""
        process, job = prepared
        options = RunOptions(
            run_id=run_id,
            adopt=True,
            cache=cache,
            native=True,
            loader="native",
            argv=["--outdir", outdir, document],
            inprocess=True,
            sandbox=self.settings.sandbox,  # the server's (TWIN_SANDBOX of the run worker)
        )

        def work() -> int:
            from twinengine.workflows.native import execute

            out = io.StringIO()
            try:
                code = execute(process, job, document, outdir, options, out, self.settings)
                message = ""
            except TwinError as exc:
                code, message = exc.exit_code, str(exc)
            except BaseException as exc:  # a thread must report, not die silently
                log.exception("in-process run %s failed", run_id)
                code, message = 1, f"{type(exc).__name__}: {exc}"
            done(run_id, code, message)
            return code

        return self.pool.submit(work)

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

"""Warm run workers: long-lived processes that execute native-path runs for ``twin serve``.

Python's interpreter lock lets one process use about one core; a server that also
answers HTTP and turns events into runs would share that core with the runs it starts.
:class:`RunWorkerPool` keeps ``workers`` child processes (``python -m
twinengine.workflows.runworker``), each with TwinEngine imported and its documents kept
loaded (:class:`~twinengine.workflows.inprocess.InProcessRunner` on a few threads), and
hands each queued run to the least busy one over a pipe (JSON lines: ``{"run", "document",
"job", "outdir", "cache"}`` in, ``{"done", "code", "message"}`` out). A run records its
worker's pid; it is cancelled through its cancel flag (its scheduler polls it), never by a
signal. A worker that dies is replaced; its runs are reported ended, and the dispatcher
records them ``failed`` unless they recorded their own end. Workers get the server's
sandbox (``TWIN_SANDBOX``), which every command of their runs is confined in.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
Done = Callable[[str, int, str], None]
NOT_NATIVE = -2  # the code a worker answers for a run it cannot take (a child process will)


class _Worker:
    def __init__(self, env: dict[str, str], threads: int, done: Done) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "twinengine.workflows.runworker", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        self.runs: set[str] = set()
        self.lock = threading.Lock()
        self.done = done
        self.reader = threading.Thread(target=self._read, name="twin-runworker", daemon=True)
        self.reader.start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        with self.lock:
            self.runs.add(message["run"])
            self.process.stdin.write((json.dumps(message) + "\n").encode())
            self.process.stdin.flush()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            run_id = message.get("done")
            if run_id:
                with self.lock:
                    self.runs.discard(run_id)
                self.done(run_id, int(message.get("code", 1)), message.get("message", ""))
        self.process.wait()
        with self.lock:
            orphans, self.runs = list(self.runs), set()
        for run_id in orphans:  # the worker died under them
            self.done(run_id, 1, f"the run worker (pid {self.pid}) ended unexpectedly")

    def close(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()


class RunWorkerPool:
    """``workers`` warm processes running queued runs, ``threads`` runs each at once."""

    def __init__(
        self, settings: Any, workers: int, threads: int, done: Done, sandbox: str | None = None
    ) -> None:
        self.settings, self.count, self.threads, self.done = settings, workers, threads, done
        self.sandbox = sandbox  # the server's: every run of a worker is confined in it
        self.workers: list[_Worker] = []
        self._lock = threading.Lock()

    def _env(self) -> dict[str, str]:
        from twinengine.workflows.children import child_env

        extra = {"TWIN_SANDBOX": self.sandbox} if self.sandbox else {}
        return child_env(self.settings, TWIN_CORES=str(self.settings.cores), **extra)

    def pick(self) -> _Worker:
        """The least busy live worker (dead ones are replaced first)."""
        with self._lock:
            self.workers = [w for w in self.workers if w.alive()]
            while len(self.workers) < self.count:
                self.workers.append(_Worker(self._env(), self.threads, self.done))
            return min(self.workers, key=lambda w: len(w.runs))

    def submit(self, run_id: str, document: str, job: str, outdir: str, cache: bool) -> int:
        """Send a run to a worker; that worker's pid."""
        worker = self.pick()
        worker.send(
            {"run": run_id, "document": document, "job": job, "outdir": outdir, "cache": cache}
        )
        return worker.pid

    def shutdown(self) -> None:
        with self._lock:
            workers, self.workers = self.workers, []
        for worker in workers:
            worker.close()


def main(threads: int) -> None:
    """The worker: read runs from stdin, run them, report each end on stdout."""
    from twinengine.core import get_settings
    from twinengine.workflows.inprocess import InProcessRunner

    runner = InProcessRunner(get_settings(), threads)
    out = sys.stdout.buffer
    write_lock = threading.Lock()

    def report(run_id: str, code: int, message: str) -> None:
        with write_lock:
            out.write(
                (json.dumps({"done": run_id, "code": code, "message": message}) + "\n").encode()
            )
            out.flush()

    sys.stdout = sys.stderr  # nothing but reports on the protocol stream
    for line in sys.stdin.buffer:
        try:
            job = json.loads(line)
            prepared = runner.prepare(job["document"], job["job"])
        except (ValueError, KeyError) as exc:
            log.error("bad request to the run worker: %s", exc)
            continue
        if prepared is None:
            report(job["run"], NOT_NATIVE, "not a native-path run")
            continue
        runner.submit(
            job["run"],
            prepared,
            document=job["document"],
            outdir=job["outdir"],
            cache=bool(job.get("cache")),
            done=report,
        )
    runner.pool.shutdown(wait=True)


if __name__ == "__main__":  # pragma: no cover - started by RunWorkerPool
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)

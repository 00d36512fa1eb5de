"""The worker of a python function: one warm interpreter, one call at a time.

:class:`PythonWorker` keeps one ``python -m twinengine.events.workers MOD:FN`` process
and sends it one call at a time over JSON lines (see :mod:`twinengine.events.workers`);
a call that outlives its timeout, or a process that dies, is killed with its whole
process group and answered as failed, and the next call starts a fresh process. With a
sandbox the process starts in it, in a working folder of its own, and writes its logs
to a file the pool opened for it (passed as a descriptor: the worker never names a
server path).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from twinengine.events.function_sandbox import FunctionSandbox
from twinengine.events.function_spec import FunctionSpec
from twinengine.events.function_workers.base import (
    MAX_RESULT,
    FunctionWorker,
    outcome,
    start_failure,
)
from twinengine.events.workers import LOG_LIMIT, read_tail
from twinengine.workflows.children import kill_group
from twinengine.workflows.executors import check_startable

START_TIMEOUT = 60.0  # seconds a python worker may take to import its callable
STOP_GRACE = 2.0  # seconds a retired worker has to exit after its stdin closed


class PythonWorker(FunctionWorker):
    """A warm interpreter serving one python function, one call at a time."""

    def __init__(
        self, spec: FunctionSpec, log_dir: Path, sandbox: FunctionSandbox | None = None
    ) -> None:
        super().__init__(spec, log_dir, sandbox)
        self.folder: str | None = None  # the sandboxed process's working folder
        self.log_path = log_dir / f"{uuid.uuid4().hex}.log"
        self._buffer = bytearray()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.alive else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> tuple[str, str] | None:
        """Start the process; ``None`` when ready, else ``(error, logs)``."""
        self.load_error = self._start()
        return self.load_error

    def _start(self) -> tuple[str, str] | None:
        command = [sys.executable, "-m", "twinengine.events.workers", self.spec.target]
        with self._lock:
            if self._stopped:
                return ("the function's pool was shut down", "")
            self._buffer = bytearray()
            try:
                check_startable(command, self.spec.env)
                self.proc = self._popen(command)
            except Exception as exc:  # a failed start is the call's answer
                self.proc = None
                return (f"cannot start a worker process: {start_failure(exc)}", "")
            self.started += 1
        message = self._read(time.monotonic() + max(START_TIMEOUT, self.spec.timeout))
        if isinstance(message, dict) and message.get("ready"):
            return None
        self._kill()
        if isinstance(message, dict):
            error = f"cannot load {self.spec.target}: {message.get('error')}"
            return (error, str(message.get("logs") or ""))
        why = "took too long to start" if message == "timeout" else "exited while starting"
        return (f"the worker for {self.spec.target} {why}", self._log_text())

    def _popen(self, command: list[str]) -> subprocess.Popen:
        """Start the worker process: plainly, or in the sandbox with a fresh folder."""
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
        if self.sandbox is None:
            return subprocess.Popen(
                [*command, "--log-file", str(self.log_path)],
                stderr=subprocess.DEVNULL,
                env=self.spec.environment(),
                start_new_session=True,
                **pipes,
            )
        FunctionSandbox.remove_folder(self.folder)
        self.folder = FunctionSandbox.new_folder(self.log_dir)
        log_fd = os.open(self.log_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            launch = self.sandbox.launch(
                [*command, "--log-fd", str(log_fd)],
                self.spec.env,
                self.folder,
                network=self.spec.network,
                python=True,
            )
            return launch.popen(
                stderr=subprocess.DEVNULL,
                cwd=self.folder,
                pass_fds=(log_fd,),
                start_new_session=True,
                **pipes,
            )
        finally:
            os.close(log_fd)

    def call(self, value: Any, timeout: float) -> dict[str, Any]:
        if not self.alive:
            failed = self.start()
            if failed is not None:
                return outcome(False, error=failed[0], logs=failed[1])
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"input": value}).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return self._died()
        message = self._read(time.monotonic() + timeout)
        if message in ("timeout", "too large"):
            self._kill()
            why = f"timed out after {timeout:g} s"
            if message == "too large":
                why = f"the result is larger than {MAX_RESULT >> 20} MiB"
            return outcome(False, error=why, logs=self._log_text())
        if not isinstance(message, dict):
            return self._died()
        if message.get("ok"):
            return outcome(True, result=message.get("result"), logs=message.get("logs", ""))
        return outcome(False, error=message.get("error"), logs=message.get("logs", ""))

    def stop(self) -> None:
        """Let the process end (end of input), killing it if it does not in time, and
        free the pipes and the log file (by the thread that serves this worker)."""
        with self._lock:
            self._stopped = True
            proc = self.proc
        if proc is not None:
            with contextlib.suppress(OSError, ValueError):
                if proc.stdin is not None:
                    proc.stdin.close()
            try:
                proc.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                pass
        self.close()

    def close(self) -> None:
        """Kill the process if still there, free its pipes, the log file and the folder."""
        self._kill()
        self.log_path.unlink(missing_ok=True)
        FunctionSandbox.remove_folder(self.folder)
        self.folder = None

    def _kill(self) -> None:
        proc = self.proc
        if proc is not None:
            kill_group(proc)
            for pipe in (proc.stdin, proc.stdout):
                with contextlib.suppress(OSError, ValueError):
                    if pipe is not None:
                        pipe.close()

    def _died(self) -> dict[str, Any]:
        logs = self._log_text()
        if self._stopped:
            self._kill()
            return outcome(False, error="the function's pool was shut down", logs=logs)
        code = None
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = self.proc.wait(5)
            if self.sandbox is not None:
                code = self.sandbox.exit_code(code)
        self._kill()
        return outcome(False, error=f"the worker process died (exit code {code})", logs=logs)

    def _log_text(self) -> str:
        """The end of what the last call printed (read by the pool: the worker is gone)."""
        return read_tail(self.log_path)

    def _read(self, deadline: float) -> dict[str, Any] | str:
        """The next protocol message, ``"timeout"`` or ``"eof"``."""
        proc = self.proc
        if proc is None or proc.stdout is None:
            return "eof"
        fd = proc.stdout.fileno()
        poller = select.poll()  # not select(): a server may hold more than 1024 files
        poller.register(fd, select.POLLIN)
        end = self._buffer.find(b"\n")
        while end < 0:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            if not poller.poll(max(1, int(left * 1000))):
                continue
            try:
                chunk = os.read(fd, 1 << 20)
            except OSError:
                return "eof"
            if not chunk:
                return "eof"
            newline = chunk.find(b"\n")
            if newline >= 0:
                end = len(self._buffer) + newline
            self._buffer += chunk
            if end < 0 and len(self._buffer) > MAX_RESULT + 2 * LOG_LIMIT:
                return "too large"
        line = bytes(self._buffer[:end])
        del self._buffer[: end + 1]
        try:
            message = json.loads(line)
        except ValueError:
            return "eof"  # the protocol is broken: treat the worker as dead
        return message if isinstance(message, dict) else "eof"

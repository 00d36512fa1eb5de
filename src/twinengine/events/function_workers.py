"""One worker of a function pool, as seen from the pool: a process it talks to.

:class:`PythonWorker` keeps one warm ``python -m twinengine.events.workers MOD:FN``
process and sends it one call at a time over JSON lines (see
:mod:`twinengine.events.workers`); a call that outlives its timeout, or a process that
dies, is killed with its whole process group and answered as failed, and the next call
starts a fresh process. :class:`CommandWorker` runs the command once per call with the
input JSON on stdin; its stdout is the result (JSON when it parses, else text), its
stderr the logs, and a non-zero exit a failure. Both answer a call with an *outcome*
dict ``{"ok", "result", "error", "logs", "started_at", "ended_at"}`` and never raise
for what the function did. With a sandbox (``twin serve``), each process starts in it
(:class:`~twinengine.events.function_sandbox.FunctionSandbox`) with a working folder of
its own, and a python worker writes its logs to a file the pool opened for it (passed
as a descriptor: the worker never names a server path). A process that cannot start
(a NUL byte in its definition's argv or environment, a sandbox that cannot be made) is
a failed call with the reason, never an error of the pool.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from subprocess import PIPE
from typing import Any

from twinengine.core.errors import TwinError
from twinengine.events.function_sandbox import FunctionSandbox
from twinengine.events.functions import FunctionSpec
from twinengine.events.workers import LOG_LIMIT, read_tail
from twinengine.workflows.children import kill_group
from twinengine.workflows.executors import check_startable

MAX_RESULT = 32 << 20  # bytes of a result (a command's stdout, a worker's answer)
START_TIMEOUT = 60.0  # seconds a python worker may take to import its callable
STOP_GRACE = 2.0  # seconds a retired worker has to exit after its stdin closed


def outcome(ok: bool, result: Any = None, error: str | None = None, logs: str = "") -> dict:
    return {"ok": ok, "result": result, "error": error, "logs": logs}


def tail(text: str, limit: int = LOG_LIMIT) -> str:
    if len(text) > limit:
        return f"[… {len(text) - limit} characters cut …]\n" + text[-limit:]
    return text


def _why(exc: Exception) -> str:
    """One line for a failed start: a TwinError's message and hint, else the error."""
    if isinstance(exc, TwinError):
        return f"{exc.message}; {exc.hint}" if exc.hint else exc.message
    return str(exc) if isinstance(exc, (OSError, ValueError)) else f"{type(exc).__name__}: {exc}"


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: the output is text


class PythonWorker:
    """A warm interpreter serving one python function, one call at a time."""

    def __init__(
        self, spec: FunctionSpec, log_dir: Path, sandbox: FunctionSandbox | None = None
    ) -> None:
        self.spec = spec
        self.log_dir = log_dir
        self.sandbox = sandbox if sandbox is not None and sandbox.confines else None
        self.folder: str | None = None  # the sandboxed process's working folder
        self.log_path = log_dir / f"{uuid.uuid4().hex}.log"
        self.proc: subprocess.Popen | None = None
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._stopped = False
        self.started = 0  # processes started by this worker (a replacement adds one)
        self.load_error: tuple[str, str] | None = None  # why the last start failed

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
                return (f"cannot start a worker process: {_why(exc)}", "")
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

    def kill(self) -> None:
        """Kill the process now, from any thread (the pool is shutting down); a call in
        progress sees the end of its output and fails."""
        with self._lock:
            self._stopped = True
            proc = self.proc
        if proc is not None:
            kill_group(proc)

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


class CommandWorker:
    """A slot of a command function: one process per call (in a folder of its own when
    sandboxed)."""

    def __init__(
        self, spec: FunctionSpec, log_dir: Path, sandbox: FunctionSandbox | None = None
    ) -> None:
        self.spec = spec
        self.log_dir = log_dir
        self.sandbox = sandbox if sandbox is not None and sandbox.confines else None
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self.started = 0
        self.load_error: tuple[str, str] | None = None

    @property
    def pid(self) -> int | None:
        return None

    @property
    def alive(self) -> bool:
        return True  # nothing to keep warm

    def start(self) -> tuple[str, str] | None:
        return None

    def call(self, value: Any, timeout: float) -> dict[str, Any]:
        folder = None
        try:
            with self._lock:
                if self._stopped:
                    return outcome(False, error="the function's pool was shut down")
                streams = {"stdin": PIPE, "stdout": PIPE, "stderr": PIPE}
                check_startable(self.spec.argv, self.spec.env)
                if self.sandbox is None:
                    proc = subprocess.Popen(
                        self.spec.argv,
                        env=self.spec.environment(),
                        start_new_session=True,
                        **streams,
                    )
                else:
                    folder = FunctionSandbox.new_folder(self.log_dir)
                    launch = self.sandbox.launch(
                        self.spec.argv, self.spec.env, folder, self.spec.network, python=False
                    )
                    proc = launch.popen(cwd=folder, start_new_session=True, **streams)
                self.proc = proc
                self.started += 1
        except Exception as exc:  # a failed start is the call's answer
            FunctionSandbox.remove_folder(folder)
            name = self.spec.argv[0] if self.spec.argv else ""
            return outcome(False, error=f"cannot start the command {name!r}: {_why(exc)}")
        try:
            out, err, why = _communicate(proc, json.dumps(value).encode(), timeout)
        finally:
            self.proc = None
            FunctionSandbox.remove_folder(folder)
        logs = tail(err.decode("utf-8", "replace"))
        code = proc.returncode
        if self.sandbox is not None:
            code = self.sandbox.exit_code(code)
        if why is None and code != 0:
            why = f"exit code {code}" if code > 0 else f"killed by signal {-code}"
            last = logs.strip().splitlines()[-1:]
            why += f": {last[0]}" if last else ""
        if self._stopped:
            why = "the function's pool was shut down"
        if why is not None:
            return outcome(False, error=why, logs=logs)
        text = out.decode("utf-8", "replace")
        try:
            result: Any = json.loads(text, parse_constant=_no_constants)
        except ValueError:
            result = text[:-1] if text.endswith("\n") else text
        return outcome(True, result=result, logs=logs)

    def stop(self) -> None:
        self.kill()

    def close(self) -> None:
        self.kill()

    def kill(self) -> None:
        with self._lock:
            self._stopped = True
            proc = self.proc
        if proc is not None:
            kill_group(proc)


def _communicate(
    proc: subprocess.Popen, data: bytes, timeout: float
) -> tuple[bytes, bytes, str | None]:
    """Feed ``data`` to ``proc`` and collect its output within ``timeout``, keeping at
    most ``MAX_RESULT`` bytes of stdout and the end of stderr: ``(out, err, why)`` where
    ``why`` says why the call failed before its exit code could (timeout, too much)."""
    out, err = bytearray(), bytearray()
    failure: list[str] = []

    def feed() -> None:
        with contextlib.suppress(OSError, ValueError):
            assert proc.stdin is not None
            proc.stdin.write(data)
            proc.stdin.close()

    def drain(pipe: Any, sink: bytearray, is_result: bool) -> None:
        with contextlib.suppress(OSError, ValueError):
            _drain(pipe, sink, is_result)

    def _drain(pipe: Any, sink: bytearray, is_result: bool) -> None:
        while chunk := os.read(pipe.fileno(), 1 << 16):
            sink += chunk
            if is_result and len(sink) > MAX_RESULT and not failure:
                failure.append(f"the output is larger than {MAX_RESULT >> 20} MiB")
                kill_group(proc)
            elif not is_result and len(sink) > 2 * LOG_LIMIT:
                del sink[: len(sink) - LOG_LIMIT]
            if is_result and failure:
                sink.clear()

    threads = [
        threading.Thread(target=feed, daemon=True),
        threading.Thread(target=drain, args=(proc.stdout, out, True), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr, err, False), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        failure.append(f"timed out after {timeout:g} s")
        kill_group(proc)
    for thread in threads:
        thread.join(5)  # a grandchild that left the group may hold a pipe: do not wait
    for pipe in (proc.stdout, proc.stderr):
        with contextlib.suppress(OSError, ValueError):
            pipe.close()
    return bytes(out), bytes(err), (failure[0] if failure else None)

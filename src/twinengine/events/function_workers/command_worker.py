"""The worker of a command function: one process per call.

:class:`CommandWorker` runs the command once per call (in a folder of its own when
sandboxed) with the input JSON on stdin; its stdout is the result (JSON when it parses,
else text), its stderr the logs (the end of them), and a non-zero exit a failure. A
call that outlives its timeout, or prints more than :data:`~.base.MAX_RESULT`, is
killed with its process group (:class:`~.base.FunctionWorker`).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from subprocess import PIPE
from typing import Any

from twinengine.events.function_sandbox import FunctionSandbox
from twinengine.events.function_workers.base import (
    MAX_RESULT,
    FunctionWorker,
    outcome,
    start_failure,
)
from twinengine.events.workers import LOG_LIMIT
from twinengine.workflows.children import kill_group
from twinengine.workflows.executors import check_startable


def _log_tail(text: str, limit: int = LOG_LIMIT) -> str:
    """The end of ``text`` (a command's stderr), saying how much was cut."""
    if len(text) > limit:
        return f"[… {len(text) - limit} characters cut …]\n" + text[-limit:]
    return text


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity: the output is text


class CommandWorker(FunctionWorker):
    """A slot of a command function: one process per call (in a folder of its own when
    sandboxed)."""

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
            return outcome(False, error=f"cannot start the command {name!r}: {start_failure(exc)}")
        try:
            out, err, why = _communicate(proc, json.dumps(value).encode(), timeout)
        finally:
            self.proc = None
            FunctionSandbox.remove_folder(folder)
        logs = _log_tail(err.decode("utf-8", "replace"))
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

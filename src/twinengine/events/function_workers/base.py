"""What both kinds of function workers share: their state, their end, their answers.

:class:`FunctionWorker` is the part of a worker the pool sees whatever its kind: the
function's spec, the sandbox it starts processes in (None: unconfined), the process it
runs now, how many it started, why the last start failed, and :meth:`~FunctionWorker.kill`.
:func:`outcome` is the dict every worker answers a call with — ``{"ok", "result",
"error", "logs"}`` (the pool adds ``started_at`` and ``ended_at``) — never an exception
for what the function did; :func:`start_failure` is the one line a call answers with
when its process cannot start. :data:`MAX_RESULT` bounds what a result may be (a
command's stdout, a python worker's answer).
"""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path
from typing import Any

from twinengine.core.errors import TwinError
from twinengine.events.function_sandbox import FunctionSandbox
from twinengine.events.function_spec import FunctionSpec
from twinengine.workflows.children import kill_group

MAX_RESULT = 32 << 20  # bytes of a result (a command's stdout, a worker's answer)


def outcome(ok: bool, result: Any = None, error: str | None = None, logs: str = "") -> dict:
    return {"ok": ok, "result": result, "error": error, "logs": logs}


def start_failure(exc: Exception) -> str:
    """One line for a failed start: a TwinError's message and hint, else the error."""
    if isinstance(exc, TwinError):
        return f"{exc.message}; {exc.hint}" if exc.hint else exc.message
    return str(exc) if isinstance(exc, (OSError, ValueError)) else f"{type(exc).__name__}: {exc}"


class FunctionWorker:
    """One worker of a pool serving ``spec`` (processes in ``sandbox`` when it confines)."""

    def __init__(
        self, spec: FunctionSpec, log_dir: Path, sandbox: FunctionSandbox | None = None
    ) -> None:
        self.spec = spec
        self.log_dir = log_dir
        self.sandbox = sandbox if sandbox is not None and sandbox.confines else None
        self.proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self.started = 0  # processes started by this worker (a replacement adds one)
        self.load_error: tuple[str, str] | None = None  # why the last start failed

    def kill(self) -> None:
        """Kill the process now, from any thread (the pool is shutting down); a call in
        progress sees the end of its output and fails."""
        with self._lock:
            self._stopped = True
            proc = self.proc
        if proc is not None:
            kill_group(proc)

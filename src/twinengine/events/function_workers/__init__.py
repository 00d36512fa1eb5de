"""The workers of a function pool, as seen from the pool: processes it talks to.

One module per kind of function. :class:`PythonWorker` (:mod:`.python_worker`) keeps
one warm ``python -m twinengine.events.workers MOD:FN`` process and sends it one call
at a time over JSON lines (see :mod:`twinengine.events.workers`); a call that outlives
its timeout, or a process that dies, is killed with its whole process group and
answered as failed, and the next call starts a fresh process. :class:`CommandWorker`
(:mod:`.command_worker`) runs the command once per call with the input JSON on stdin;
its stdout is the result (JSON when it parses, else text), its stderr the logs, and a
non-zero exit a failure. Both answer a call with an *outcome* (:mod:`.base`) dict
``{"ok", "result", "error", "logs", "started_at", "ended_at"}`` and never raise for
what the function did. With a sandbox (``twin serve``), each process starts in it
(:class:`~twinengine.events.function_sandbox.FunctionSandbox`) with a working folder of
its own, and a python worker writes its logs to a file the pool opened for it (passed
as a descriptor: the worker never names a server path). A process that cannot start
(a NUL byte in its definition's argv or environment, a sandbox that cannot be made) is
a failed call with the reason, never an error of the pool.
"""

from twinengine.events.function_workers.base import MAX_RESULT, FunctionWorker, outcome
from twinengine.events.function_workers.command_worker import CommandWorker
from twinengine.events.function_workers.python_worker import PythonWorker

__all__ = ["MAX_RESULT", "CommandWorker", "FunctionWorker", "PythonWorker", "outcome"]

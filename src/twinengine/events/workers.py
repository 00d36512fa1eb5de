"""The worker process of a python function: ``python -m twinengine.events.workers MOD:FN``.

It imports the callable once, says ``{"ready": true}`` (or why it could not) and then
serves calls as JSON lines, one at a time: it reads ``{"input": …}`` on stdin and writes
``{"ok": true, "result": …, "logs": …}`` or ``{"ok": false, "error": …, "logs": …}`` on
stdout. The protocol uses private duplicates of the original stdin/stdout descriptors;
descriptors 0, 1 and 2 are pointed elsewhere (0 at ``/dev/null``, 1 and 2 at the log
file given with ``--log-file``, or opened by the pool and given as ``--log-fd`` — a
sandboxed worker cannot see the pool's folder), so whatever the callable prints — Python
``print``, C libraries, child processes — lands in the call's ``logs`` and never in the
protocol. A call that raises answers with the traceback's last line as ``error`` (the
whole traceback goes into the logs); the worker keeps serving. End of input ends the
worker. Only the standard library is imported here, so a worker is warm in a few tens of
ms.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from typing import IO, Any

LOG_LIMIT = 256 * 1024  # characters of logs kept per call (the end of them)


def load_callable(target: str) -> Callable[[Any], Any]:
    """The callable named ``module:function`` (``function`` may be dotted: ``Class.meth``)."""
    module_name, _, attr_path = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        value = getattr(value, part)
    if not callable(value):
        raise TypeError(f"{target} is not callable")
    return value


def read_log(handle: IO[bytes], limit: int = LOG_LIMIT) -> str:
    """The end of what the log file holds (its last ``limit`` characters, noted if cut)."""
    handle.flush()
    return _tail_of(handle, limit)


def read_tail(path: str | os.PathLike[str], limit: int = LOG_LIMIT) -> str:
    """The end of the log file at ``path`` ("" when there is none)."""
    try:
        with open(path, "rb") as handle:
            return _tail_of(handle, limit)
    except OSError:
        return ""


def _tail_of(handle: IO[bytes], limit: int) -> str:
    size = handle.seek(0, os.SEEK_END)
    handle.seek(max(0, size - 4 * limit))  # a runaway print loop: never read it all
    text = handle.read().decode("utf-8", "replace")
    cut = len(text) - limit if size <= 4 * limit else size - limit
    if len(text) > limit:
        text = text[-limit:]
    if cut > 0:
        text = f"[… about {cut} characters cut …]\n" + text
    return text


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def _reset_log(handle: IO[bytes]) -> None:
    _flush_std()
    handle.seek(0)
    handle.truncate()


def _error_line(exc: BaseException) -> str:
    lines = traceback.format_exception_only(type(exc), exc)
    return (lines[-1] if lines else repr(exc)).strip()


def _answer(proto: IO[bytes], message: dict[str, Any]) -> None:
    try:
        line = json.dumps(message, allow_nan=False)
    except (TypeError, ValueError) as exc:  # a result that is not JSON-able
        message = {
            "ok": False,
            "error": f"the result is not JSON-serialisable: {_error_line(exc)}",
            "logs": message.get("logs", ""),
        }
        line = json.dumps(message)
    proto.write(line.encode() + b"\n")
    proto.flush()


def _call(function: Callable[[Any], Any], request: dict[str, Any], log: IO[bytes]) -> dict:
    _reset_log(log)
    try:
        result = function(request.get("input"))
    except BaseException as exc:  # every failure is the call's, not ours
        # the traceback from the callable down (this module's frame left out)
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        _flush_std()
        return {"ok": False, "error": _error_line(exc), "logs": read_log(log)}
    _flush_std()
    return {"ok": True, "result": result, "logs": read_log(log)}


def serve(target: str, log_path: str | None = None, log_fd: int | None = None) -> int:
    """Serve calls of ``target`` on this process's stdin/stdout until end of input."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto = os.fdopen(os.dup(1), "wb")
    log: IO[bytes]
    if log_fd is not None:
        log = os.fdopen(log_fd, "w+b")
    else:
        log = open(log_path, "w+b") if log_path else tempfile.TemporaryFile()  # noqa: SIM115
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    try:
        function = load_callable(target)
    except BaseException as exc:  # reported to the pool, then we exit
        traceback.print_exc()
        _answer(proto, {"ready": False, "error": _error_line(exc), "logs": read_log(log)})
        return 2
    _answer(proto, {"ready": True, "pid": os.getpid()})
    for raw in proto_in:
        if not raw.strip():
            continue
        try:
            request = json.loads(raw)
        except ValueError as exc:
            _answer(proto, {"ok": False, "error": f"bad request line: {exc}", "logs": ""})
            continue
        _answer(proto, _call(function, request, log))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twinengine.events.workers")
    parser.add_argument("target", help="module:function")
    parser.add_argument("--log-file", help="where the calls' output is collected")
    parser.add_argument("--log-fd", type=int, help="an open file for the calls' output")
    args = parser.parse_args(argv)
    return serve(args.target, args.log_file, args.log_fd)


if __name__ == "__main__":
    sys.exit(main())

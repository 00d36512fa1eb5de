"""How a finished command maps to a CWL process status (cwltool's rules), for both paths."""

from __future__ import annotations

from collections.abc import Container

from twinengine.workflows.executors.base import JobResult


def command_outcome(
    result: JobResult,
    timelimit: float | None,
    success: Container[int] = (),
    temporary_fail: Container[int] = (),
    permanent_fail: Container[int] = (),
) -> tuple[str, str | None, bool]:
    """``(status, message, ran)``: the CWL status, why it is not success, and whether the
    command ran to its end (only then are its outputs collected)."""
    if result.error:
        return "permanentFail", f"could not start the command: {result.error}", False
    if result.timed_out:
        message = f"exceeded its time limit of {timelimit} seconds and was terminated"
        return "permanentFail", message, False
    if result.cancelled:
        return "permanentFail", "cancelled", False
    code = result.exit_code
    if code in success:
        status = "success"
    elif code in temporary_fail:
        status = "temporaryFail"
    elif code in permanent_fail:
        status = "permanentFail"
    else:
        status = "success" if code == 0 else "permanentFail"
    if status == "success":
        return status, None, True
    message = f"terminated by signal {-code}" if code < 0 else f"exited with status {code}"
    return status, message, True

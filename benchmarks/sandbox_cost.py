"""What the sandbox adds to one step, measured at the executor (shared by the benchmarks).

:func:`step_cost` runs ``steps`` one-step commands like the ``echo`` template's (``echo``
with its stdout captured in a fresh working folder) through the local executor one after
the other, plainly and in the sandbox ``twin serve`` would use here, and returns the mean
wall time per step of each: the difference is the sandbox's cost per step (preparing the
folder for the sandbox user, building the mount plan, and starting bwrap and setpriv).
Run alone: ``python benchmarks/sandbox_cost.py [--steps 300]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from twinengine.core import get_settings
from twinengine.workflows.executors.base import JobSpec
from twinengine.workflows.executors.local import LocalExecutor
from twinengine.workflows.sandbox import SandboxUnavailableError, server_sandbox


def _steps(folder: Path, sandbox: str | None, steps: int) -> float:
    folder = Path(tempfile.mkdtemp(dir=folder))
    executor = LocalExecutor(cores=1, ram_mb=0)
    started = time.perf_counter()
    for n in range(steps):
        work = folder / str(n)
        work.mkdir()
        executor.submit(
            JobSpec(
                key=str(n),
                argv=["echo", f"step {n}"],
                cwd=str(work),
                env={"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work)},
                stdout_path=str(work / "output.txt"),
                sandbox=sandbox,
                writable=(str(work),) if sandbox else (),
            )
        )
        while not executor.wait(5):
            pass
    elapsed = time.perf_counter() - started
    executor.close()
    return elapsed / steps * 1000


def step_cost(steps: int = 300) -> tuple[str, float, float]:
    """``(sandbox name, plain ms/step, sandboxed ms/step)``."""
    try:
        box = server_sandbox(get_settings())
    except SandboxUnavailableError:
        return "none", 0.0, 0.0
    with tempfile.TemporaryDirectory(prefix="twin-sandbox-cost-") as tmp:
        os.environ.setdefault("TWIN_HOME", tmp)
        _steps(Path(tmp), None, 20)  # warm up: imports, page cache
        plain = _steps(Path(tmp), None, steps)
        boxed = _steps(Path(tmp), box.name, steps)
    return box.name, plain, boxed


def report(steps: int = 300) -> str:
    name, plain, boxed = step_cost(steps)
    if name == "none":
        return "sandbox cost per step: no sandbox works here (not measured)"
    return (
        f"sandbox cost per step ({name}, {steps} echo steps one after the other): plain "
        f"{plain:.2f} ms, sandboxed {boxed:.2f} ms, added {boxed - plain:.2f} ms per step"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    print(report(parser.parse_args().steps))

"""Shared helpers for engine and CLI tests: run the real commands in a subprocess."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from twinengine.workflows import RunOptions, run_cwl

DATA = Path(__file__).parent / "data"
BIN = Path(sys.executable).parent


def exe(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def _command(name: str, args: tuple[str, ...], cwd: Path | None, timeout: float):
    return subprocess.run(
        [exe(name), *args],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def twin(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the ``twin`` CLI with the test's environment (TWIN_HOME set by conftest)."""
    return _command("twin", args, cwd, timeout)


def runner(
    *args: str, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Run ``twin-cwl-runner`` with the test's environment."""
    return _command("twin-cwl-runner", args, cwd, timeout)


def write_job(path: Path, job: dict) -> Path:
    path.write_text(json.dumps(job))
    return path


def run_in_process(argv: list[str], **options) -> tuple[int, dict | None, RunOptions]:
    """``run_cwl`` with ``--quiet``: exit code, output object and the options (with
    ``run_id`` set to the run it created)."""
    opts = RunOptions(**options)
    seen: list[str] = []
    opts.on_run = seen.append
    out = io.StringIO()
    code = run_cwl(["--quiet", *argv], opts, stdout=out)
    text = out.getvalue()
    opts.run_id = seen[0] if seen else None
    return code, (json.loads(text) if text.strip() else None), opts

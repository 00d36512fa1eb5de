"""The hello-twin demo workflow runs end to end through ``twin-cwl-runner``."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-twin"
WORKFLOW = EXAMPLE / "workflow.cwl"
JOB = EXAMPLE / "job.yml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

pytest.importorskip("matplotlib", reason="the plot step needs matplotlib (the demo extra)")


def _runner() -> str:
    beside = Path(sys.executable).parent / "twin-cwl-runner"
    if beside.exists():
        return str(beside)
    found = shutil.which("twin-cwl-runner")
    if found is None:
        pytest.skip("twin-cwl-runner is not installed")
    return found


def _run(tmp_path: Path, job: Path) -> dict[str, Any]:
    env = dict(os.environ)
    env["TWIN_HOME"] = str(tmp_path / "home")
    # The steps run `python3` from PATH: make it this interpreter (it has matplotlib).
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    proc = subprocess.run(
        [_runner(), "--quiet", "--outdir", str(tmp_path / "out"), str(WORKFLOW), str(job)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _check(out: dict[str, Any], samples: int, expected_periods: int) -> None:
    png = Path(out["plot_png"]["path"])
    assert png.is_file()
    assert png.read_bytes()[:8] == PNG_MAGIC

    removed = out["outliers_removed"]
    assert isinstance(removed, int)
    assert removed > 0

    raw = _rows(out["raw"]["path"])
    cleaned = _rows(out["cleaned"]["path"])
    assert len(raw) == samples
    assert len(cleaned) == samples - removed
    report = json.loads(Path(out["clean_report"]["path"]).read_text())
    assert report["removed"] == removed
    assert report["input_points"] == samples

    aggregated = _rows(out["aggregated"]["path"])
    assert len(aggregated) == expected_periods
    assert list(aggregated[0]) == ["period_start", "mean", "min", "max", "count"]
    assert sum(int(row["count"]) for row in aggregated) == len(cleaned)
    for row in aggregated:
        assert float(row["min"]) <= float(row["mean"]) <= float(row["max"])


def test_demo_job(tmp_path: Path) -> None:
    """The shipped job: 30 days of 10-minute samples, 8 spikes, daily aggregates."""
    out = _run(tmp_path, JOB)
    _check(out, samples=4320, expected_periods=30)
    assert out["outliers_removed"] == 8  # every injected spike is found, nothing else


def test_custom_job_hourly(tmp_path: Path) -> None:
    """Other parameters flow through: one day of 5-minute samples, hourly aggregates."""
    job = tmp_path / "job.yml"
    job.write_text(
        "samples: 288\nseed: 7\nspikes: 3\ninterval_minutes: 5\nperiod_minutes: 60\n",
        encoding="utf-8",
    )
    out = _run(tmp_path, job)
    _check(out, samples=288, expected_periods=24)
    assert out["outliers_removed"] == 3

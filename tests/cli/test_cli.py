"""The ``twin`` command as a user runs it: real subprocesses, real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.workflows.helpers import DATA, exe, runner, twin, write_job


def _runs(home: Path) -> list[dict]:
    result = twin("runs", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_run_prints_the_cwl_output_object(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.json", {"items": ["a", "b"]})
    result = twin("run", "--outdir", str(tmp_path / "out"), str(DATA / "scatter.cwl"), str(job))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [Path(f["path"]).read_text() for f in out["outs"]] == ["a\n", "b\n"]
    assert "Traceback" not in result.stderr


def test_run_accepts_inputs_on_the_command_line(tmp_path: Path) -> None:
    result = twin("run", str(DATA / "echo.cwl"), "--item", "from-the-cli")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert Path(out["out"]["path"]).read_text() == "from-the-cli\n"
    # default output folder lives under TWIN_HOME/runs/RUN/outputs
    assert "/runs/" in out["out"]["path"] and "/outputs/" in out["out"]["path"]


def test_runs_list_show_and_logs(tmp_path: Path) -> None:
    assert twin("run", str(DATA / "fail.cwl")).returncode == 1
    (run,) = _runs(tmp_path)
    assert run["state"] == "failed"
    show = twin("runs", "show", run["id"][:10])
    assert show.returncode == 0
    assert "failed" in show.stdout and "fail.cwl" in show.stdout
    logs = twin("runs", "logs", run["id"])
    assert "the sensor is offline" in logs.stdout


def test_failed_step_shows_the_tail_of_its_stderr(tmp_path: Path) -> None:
    result = twin("run", str(DATA / "fail.cwl"))
    assert result.returncode == 1
    assert "the sensor is offline" in result.stderr
    assert "exited with status 3" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_reports_file_line_and_column(tmp_path: Path) -> None:
    ok = twin("validate", str(DATA / "scatter.cwl"))
    assert ok.returncode == 0 and "valid CWL Workflow" in ok.stdout
    bad = twin("validate", str(DATA / "invalid.cwl"))
    assert bad.returncode == 1
    assert "invalid.cwl:5:" in bad.stderr  # file:line:column of the bad type
    assert "strnig" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_validate_missing_file(tmp_path: Path) -> None:
    result = twin("validate", "nope.cwl")
    assert result.returncode == 1
    assert "nope.cwl: no such file" in result.stderr


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    wrong_type = write_job(tmp_path / "job.json", {"items": "not-a-list"})
    result = twin("run", str(DATA / "scatter.cwl"), str(wrong_type))
    assert result.returncode == 1
    assert "items" in result.stderr and "Traceback" not in result.stderr
    missing = twin("run", str(DATA / "scatter.cwl"), str(write_job(tmp_path / "e.json", {})))
    assert missing.returncode == 1
    assert "items" in missing.stderr and "Traceback" not in missing.stderr


def test_missing_input_file_is_a_clear_error(tmp_path: Path) -> None:
    job = write_job(
        tmp_path / "job.json", {"infile": {"class": "File", "path": "absent.txt"}, "seconds": 0}
    )
    result = twin("run", str(DATA / "slow-cat.cwl"), str(job))
    assert result.returncode == 1
    assert "absent.txt" in result.stderr and "Traceback" not in result.stderr


def test_unknown_executor(tmp_path: Path) -> None:
    result = twin("run", "--executor", "slurmish", str(DATA / "echo.cwl"), "--item", "x")
    assert result.returncode == 1
    assert "unknown executor 'slurmish'" in result.stderr
    assert "local" in result.stderr


def test_hard_docker_requirement_exits_33(tmp_path: Path) -> None:
    result = twin("run", str(DATA / "docker-required.cwl"))
    assert result.returncode == 33


def test_runner_accepts_cwltest_arguments(tmp_path: Path) -> None:
    result = runner(
        "--outdir", str(tmp_path / "o"), "--quiet", "--no-container",
        str(DATA / "echo.cwl"), "--item", "hi",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["out"]["basename"]


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _step_states(home: Path) -> dict[str, str]:
    db = home / "twin.db"
    if not db.exists():
        return {}
    with sqlite3.connect(db) as conn:
        try:
            return dict(conn.execute("SELECT name, state FROM steps").fetchall())
        except sqlite3.OperationalError:
            return {}


def _start_run(tmp_path: Path, seconds: float) -> tuple[subprocess.Popen, Path]:
    counter = tmp_path / "counter"
    job = write_job(tmp_path / "job.json", {"counter": str(counter), "seconds": seconds})
    proc = subprocess.Popen(
        [exe("twin"), "run", "--quiet", str(DATA / "two-steps.cwl"), str(job)],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, counter


@pytest.mark.slow
def test_cancel_stops_running_processes(tmp_path: Path) -> None:
    proc, _ = _start_run(tmp_path, 60)
    _wait_for(lambda: "running" in _step_states(tmp_path).values())
    (run,) = _runs(tmp_path)
    started = time.monotonic()
    assert twin("runs", "cancel", run["id"]).returncode == 0
    proc.wait(timeout=30)
    assert time.monotonic() - started < 15
    assert proc.returncode == 1
    (run,) = _runs(tmp_path)
    assert run["state"] == "cancelled"
    assert "cancelled" in _step_states(tmp_path).values()


@pytest.mark.slow
def test_resume_after_kill_9_reuses_succeeded_steps(tmp_path: Path) -> None:
    proc, counter = _start_run(tmp_path, 6)
    _wait_for(lambda: "succeeded" in _step_states(tmp_path).values())
    _wait_for(lambda: "running" in _step_states(tmp_path).values())
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    (run,) = _runs(tmp_path)
    assert run["state"] == "interrupted"  # the driver is gone
    assert counter.read_text().strip() == "1"
    # make the slow step quick for the second attempt: same inputs, so rewrite the job
    options_job = json.loads((tmp_path / "job.json").read_text())
    assert options_job["seconds"] == 6
    resumed = twin("runs", "resume", run["id"], timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    out = json.loads(resumed.stdout)
    assert Path(out["second"]["path"]).read_text() == "first step ran 1 time(s)\n"
    assert counter.read_text().strip() == "1"  # the first step was reused, not rerun
    (run,) = _runs(tmp_path)
    assert run["state"] == "succeeded" and run["attempt"] == 2


def test_resume_refuses_a_succeeded_run(tmp_path: Path) -> None:
    assert twin("run", str(DATA / "echo.cwl"), "--item", "x").returncode == 0
    (run,) = _runs(tmp_path)
    result = twin("runs", "resume", run["id"])
    assert result.returncode == 1
    assert "already succeeded" in result.stderr


def test_unknown_run_id(tmp_path: Path) -> None:
    result = twin("runs", "show", "doesnotexist")
    assert result.returncode == 1
    assert "no run with id 'doesnotexist'" in result.stderr


@pytest.mark.skipif(not shutil.which("script"), reason="needs util-linux `script` for a pty")
def test_live_progress_on_a_terminal_keeps_stdout_clean(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.json", {"items": ["a", "b", "c"]})
    out = tmp_path / "out.json"
    command = f"{exe('twin')} run {DATA / 'scatter.cwl'} {job} > {out}"
    result = subprocess.run(
        ["script", "-qec", command, str(tmp_path / "tty.log")],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (tmp_path / "tty.log").read_text()[-2000:]
    assert len(json.loads(out.read_text())["outs"]) == 3  # stdout: only the output object
    assert "3 step(s) done" in (tmp_path / "tty.log").read_text()  # progress on the tty


def test_an_unusable_output_folder_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    for extra in ([], ["--no-native"]):
        result = twin(
            "run", *extra, "--outdir", str(blocker / "out"), str(DATA / "echo.cwl"), "--item", "x"
        )
        assert result.returncode != 0
        assert "cannot use" in result.stderr and "output folder" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_missing_document_is_one_clear_error(tmp_path: Path) -> None:
    result = twin("run", str(tmp_path / "nope.cwl"))
    assert result.returncode != 0
    assert "no CWL document at" in result.stderr and "Traceback" not in result.stderr

"""The local executor: lazy log files, many commands, cancelling, start errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

from twinengine.workflows.executors.base import JobSpec
from twinengine.workflows.executors.local import LocalExecutor


def spec(tmp_path: Path, key: str, script: str, **extra) -> JobSpec:
    return JobSpec(
        key=key,
        argv=["sh", "-c", script],
        cwd=str(tmp_path),
        env={"PATH": os.environ["PATH"]},
        stdout_path=str(tmp_path / f"{key}.out"),
        stderr_path=str(tmp_path / f"{key}.err"),
        stdout_is_log=True,
        stderr_is_log=True,
        **extra,
    )


def drain(executor: LocalExecutor, count: int, timeout: float = 30) -> dict:
    results = {}
    deadline = time.monotonic() + timeout
    while len(results) < count and time.monotonic() < deadline:
        for result in executor.wait(0.5):
            results[result.key] = result
    return results


def test_log_files_appear_only_when_written(tmp_path: Path) -> None:
    executor = LocalExecutor(cores=2, ram_mb=0)
    executor.submit(spec(tmp_path, "quiet", "true"))
    # more than a pipe holds: the executor must read the log while the command runs
    executor.submit(spec(tmp_path, "talks", "echo out; head -c 200000 /dev/zero | tr '\\0' x >&2"))
    results = drain(executor, 2)
    executor.close()
    assert {k: r.exit_code for k, r in results.items()} == {"quiet": 0, "talks": 0}
    assert not (tmp_path / "quiet.out").exists() and not (tmp_path / "quiet.err").exists()
    assert (tmp_path / "talks.out").read_text() == "out\n"
    assert (tmp_path / "talks.err").read_text() == "x" * 200_000


def test_many_commands_at_once(tmp_path: Path) -> None:
    executor = LocalExecutor(cores=2, ram_mb=0)
    for i in range(40):
        executor.submit(spec(tmp_path, f"j{i}", f"echo {i}; exit {i % 3}"))
    assert executor.running() == 40
    results = drain(executor, 40)
    executor.close()
    assert sorted(results) == sorted(f"j{i}" for i in range(40))
    assert all(results[f"j{i}"].exit_code == i % 3 for i in range(40))
    assert all((tmp_path / f"j{i}.out").read_text() == f"{i}\n" for i in range(40))


def test_cancel_stops_running_and_queued_commands(tmp_path: Path) -> None:
    executor = LocalExecutor(cores=2, ram_mb=0)
    for i in range(6):
        executor.submit(spec(tmp_path, f"s{i}", "sleep 30"))
    for i in range(6):
        executor.cancel(f"s{i}")
    started = time.monotonic()
    results = drain(executor, 6)
    executor.close()
    assert time.monotonic() - started < 10
    assert len(results) == 6 and all(r.cancelled for r in results.values())


def test_a_missing_program_is_a_start_error(tmp_path: Path) -> None:
    executor = LocalExecutor(cores=1, ram_mb=0)
    executor.submit(JobSpec(key="nope", argv=["no-such-program-xyz"], cwd=str(tmp_path), env={}))
    (result,) = drain(executor, 1).values()
    executor.close()
    assert result.error and "no-such-program-xyz" in result.error

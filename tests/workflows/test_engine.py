"""The engine end to end: real CWL files, real processes, a real SQLite database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.workflows.helpers import DATA, run_in_process, write_job
from twinengine.workflows import RunStore

run = run_in_process


def test_scatter_runs_every_item_and_records_steps(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.json", {"items": [f"sample-{i}" for i in range(12)]})
    code, out, opts = run([f"--outdir={tmp_path / 'out'}", str(DATA / "scatter.cwl"), str(job)])
    assert code == 0
    contents = [Path(f["path"]).read_text() for f in out["outs"]]
    assert contents == [f"sample-{i}\n" for i in range(12)]
    store = RunStore()
    run_row = store.get(opts.run_id)
    assert run_row["state"] == "succeeded"
    assert run_row["outputs"]["outs"][0]["basename"]
    steps = store.steps(opts.run_id)
    assert len(steps) == 12
    assert {s["state"] for s in steps} == {"succeeded"}
    assert all(s["exit_code"] == 0 and s["wall_time"] >= 0 for s in steps)
    assert all(s["peak_memory"] and s["peak_memory"] > 0 for s in steps)
    assert sorted(s["name"] for s in steps)[0].startswith("scatter.cwl/echo[")
    assert steps[0]["command_line"][0] == "echo"


def test_failed_step_fails_the_run_and_keeps_its_stderr(tmp_path: Path, caplog) -> None:
    code, _, opts = run([str(DATA / "fail.cwl")])
    assert code == 1
    store = RunStore()
    assert store.get(opts.run_id)["state"] == "failed"
    (step,) = store.steps(opts.run_id)
    assert step["state"] == "failed"
    assert step["exit_code"] == 3
    assert "the sensor is offline" in store.logs(opts.run_id, step["name"])


def test_retry_hint_retries_until_success(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    job = write_job(tmp_path / "job.json", {"counter": str(counter), "fail_times": 2})
    code, out, opts = run([f"--outdir={tmp_path / 'out'}", str(DATA / "flaky.cwl"), str(job)])
    assert code == 0
    assert counter.read_text().strip() == "3"
    assert Path(out["out"]["path"]).read_text() == "ok\n"
    steps = RunStore().steps(opts.run_id)
    assert [s["state"] for s in steps] == ["failed", "failed", "succeeded"]
    assert [s["attempt"] for s in steps] == [1, 2, 3]


def test_retry_gives_up_after_max_attempts(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    job = write_job(tmp_path / "job.json", {"counter": str(counter), "fail_times": 5})
    code, _, opts = run([str(DATA / "flaky.cwl"), str(job)])
    assert code == 1
    assert counter.read_text().strip() == "3"
    assert RunStore().get(opts.run_id)["state"] == "failed"


def _intervals(folder: Path) -> dict[str, tuple[float, float]]:
    spans = {}
    for start in folder.glob("*.start"):
        end = start.with_suffix(".end")
        spans[start.stem] = (float(start.read_text()), float(end.read_text()))
    return spans


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    best = current = 0
    for _, delta in events:
        current += delta
        best = max(best, current)
    return best


@pytest.mark.slow
def test_resource_limits_are_never_exceeded(tmp_path: Path) -> None:
    logs = tmp_path / "stamps"
    logs.mkdir()
    job = write_job(
        tmp_path / "job.json",
        {"names": [f"s{i}" for i in range(6)], "log_dir": str(logs), "seconds": 0.4},
    )
    code, _, _ = run([str(DATA / "resources-wf.cwl"), str(job)], cores=2)
    assert code == 0
    spans = _intervals(logs)
    assert len(spans) == 7
    small = [v for k, v in spans.items() if k != "big"]
    assert _max_overlap(small) == 2  # parallel, but never more than 2 cores' worth
    big_start, big_end = spans["big"]
    # the 2-core job ran alone: no small job overlapped it
    assert all(e <= big_start + 0.05 or s >= big_end - 0.05 for s, e in small)


def test_hard_docker_requirement_is_unsupported(tmp_path: Path) -> None:
    code, _, opts = run([str(DATA / "docker-required.cwl")])
    assert code == 33
    assert RunStore().get(opts.run_id)["state"] == "failed"


def test_time_limit_kills_the_step(tmp_path: Path) -> None:
    code, _, opts = run([str(DATA / "timelimit.cwl")])
    assert code == 1
    (step,) = RunStore().steps(opts.run_id)
    assert "time limit" in step["message"]
    assert step["wall_time"] < 10


def test_loop_extension_iterates_until_condition_is_false(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.json", {"i1": 1})
    code, out, _ = run([str(DATA / "loop.cwl"), str(job)])
    assert code == 0
    assert out == {"o1": 10}


def test_cache_reuses_identical_step_executions(tmp_path: Path) -> None:
    counter = tmp_path / "counter"
    job = write_job(tmp_path / "job.json", {"counter": str(counter), "seconds": 0})
    argv = [str(DATA / "two-steps.cwl"), str(job)]
    code1, _, _ = run([f"--outdir={tmp_path / 'o1'}", *argv], cache=True)
    code2, out2, opts2 = run([f"--outdir={tmp_path / 'o2'}", *argv], cache=True)
    assert code1 == code2 == 0
    assert counter.read_text().strip() == "1"  # the first step ran once for both runs
    assert Path(out2["second"]["path"]).read_text() == "first step ran 1 time(s)\n"
    steps = RunStore().steps(opts2.run_id)
    assert all(s["reused_from"] for s in steps)


def test_work_reuse_false_disables_the_cache(tmp_path: Path) -> None:
    tool = tmp_path / "noreuse.cwl"
    tool.write_text(
        (DATA / "count.cwl")
        .read_text()
        .replace(
            "  ShellCommandRequirement: {}",
            "  ShellCommandRequirement: {}\n  WorkReuse: {enableReuse: false}",
        )
    )
    counter = tmp_path / "counter"
    job = write_job(tmp_path / "job.json", {"counter": str(counter)})
    for i in range(2):
        code, _, _ = run([f"--outdir={tmp_path / f'o{i}'}", str(tool), str(job)], cache=True)
        assert code == 0
    assert counter.read_text().strip() == "2"


def test_documents_loaded_in_one_process_share_one_parsed_cwl_schema() -> None:
    """Registering TwinEngine's extension again with the same text must not make cwltool
    drop its parsed schema (before: every load parsed the CWL schema anew, ~1 s each)."""
    from cwltool.process import SCHEMA_CACHE

    from twinengine.workflows.loading import load_document

    first = load_document(str(DATA / "flaky.cwl"))  # twin:Retry: the extension validates
    schema = SCHEMA_CACHE["v1.2"]
    load_document(str(DATA / "flaky.cwl"))
    load_document(str(DATA / "scatter.cwl"))
    assert SCHEMA_CACHE["v1.2"] is schema
    assert first.tool["class"] == "CommandLineTool"

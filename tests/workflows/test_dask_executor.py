"""The Dask executor against a real dask.distributed LocalCluster."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tests.workflows.helpers import DATA, write_job
from twinengine.workflows import JobSpec, RunOptions, RunStore, make_executor, run_cwl

pytest.importorskip("distributed")


@pytest.mark.slow
def test_scatter_on_a_local_dask_cluster(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.json", {"items": [f"x{i}" for i in range(6)]})
    seen: list[str] = []
    out = io.StringIO()
    code = run_cwl(
        ["--quiet", f"--outdir={tmp_path / 'out'}", str(DATA / "scatter.cwl"), str(job)],
        RunOptions(executor="dask", cores=2, on_run=seen.append),
        stdout=out,
    )
    assert code == 0
    result = json.loads(out.getvalue())
    assert [Path(f["path"]).read_text() for f in result["outs"]] == [f"x{i}\n" for i in range(6)]
    store = RunStore()
    assert store.get(seen[0])["executor"] == "dask"
    steps = store.steps(seen[0])
    assert len(steps) == 6 and all(s["peak_memory"] for s in steps)


@pytest.mark.slow
def test_dask_executor_cancel_kills_the_command(tmp_path: Path) -> None:
    executor = make_executor("dask", cores=1, ram_mb=0)
    executor.start()
    try:
        spec = JobSpec(
            key="k1", argv=["sleep", "60"], cwd=str(tmp_path), env={"PATH": "/bin:/usr/bin"}
        )
        executor.submit(spec)
        assert executor.wait(1.0) == []
        executor.cancel("k1")
        results = []
        for _ in range(60):
            results = executor.wait(0.5)
            if results:
                break
        (result,) = results
        assert result.cancelled and result.exit_code < 0
        assert result.wall_time < 20
    finally:
        executor.close()

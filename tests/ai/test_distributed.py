"""Distributed training: 2 DDP processes on the CPU (gloo) against one, resume, CLI, Slurm."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("mlflow")

import torch

import twinengine.core
from twinengine.ai import load_config, train
from twinengine.ai.distributed import DistributedError, _read_answer, launch, slurm_script
from twinengine.core.errors import ConfigError, NotFoundError

from .test_train import write_example

QUICK = ["tracking.provenance=false", "tracking.tensorboard=false", "trainer.onnx=false"]


def weights(path: Path | None) -> dict[str, Any]:
    assert path is not None and path.is_file()
    return torch.load(path, weights_only=True)


def max_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def step_losses(uri: str, run_id: str) -> list[float]:
    from mlflow import MlflowClient

    history = MlflowClient(tracking_uri=uri).get_metric_history(run_id, "train_loss_step")
    return [m.value for m in sorted(history, key=lambda m: m.step)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process for 4 and for 6 epochs; 2 processes for 4 epochs, then resumed to 6.

    159 rows leave 127 training samples, so the last global batch of 16 has 15 and the
    ranks' shards are uneven (8 and 7): the loss weighting must still match."""
    home = tmp_path_factory.mktemp("ddp-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWIN_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        twinengine.core.reset()
        path = write_example(home, rows=159)
        base = [*QUICK, "trainer.log_every_n_steps=1"]
        out = {
            "config": path,
            "1x4": train(load_config(path, base)),
            "1x6": train(load_config(path, [*base, "trainer.epochs=6"])),
            "2x4": launch(path, base, nproc=2),
        }
        out["2x6"] = launch(path, [*base, "trainer.epochs=6"], out["2x4"].run_id, nproc=2)
        twinengine.core.reset()
    return out


@pytest.mark.slow
def test_two_processes_give_the_weights_of_one(runs: dict[str, Any]) -> None:
    one, two = runs["1x4"], runs["2x4"]
    assert max_difference(weights(one.model_path), weights(two.model_path)) < 1e-5
    assert [row["epoch"] for row in two.history] == [1, 2, 3, 4]
    for a, b in zip(one.history, two.history, strict=True):
        assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    # the per-step loss rank 0 logs is the whole global batch's, as with one process
    single = step_losses(one.tracking_uri, one.run_id)
    assert len(single) == 4 * 8
    assert step_losses(two.tracking_uri, two.run_id)[:32] == pytest.approx(single, rel=1e-5)


@pytest.mark.slow
def test_resume_with_two_processes(runs: dict[str, Any]) -> None:
    first, resumed = runs["2x4"], runs["2x6"]
    assert resumed.run_id == first.run_id
    assert resumed.start_epoch == 5
    assert [row["epoch"] for row in resumed.history] == [5, 6]
    assert max_difference(weights(runs["1x6"].model_path), weights(resumed.model_path)) < 1e-5


@pytest.mark.slow
def test_rank_zero_alone_tracks(runs: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    two = runs["2x6"]
    client = MlflowClient(tracking_uri=two.tracking_uri)
    run = client.get_run(two.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["trainer.strategy"] == "ddp"
    assert run.data.tags["twin.resumed_from_epoch"] == "4"
    # 1x4, 1x6 and 2x4 (2x6 resumed it): the second rank made no run of its own
    assert len(client.search_runs([run.info.experiment_id])) == 3
    assert {"config.yaml", "model", "checkpoints"} <= {
        a.path for a in client.list_artifacts(two.run_id)
    }
    steps = [m.step for m in client.get_metric_history(two.run_id, "val_loss")]
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]


def _cli(args: list[str]) -> Any:
    import typer
    from typer.testing import CliRunner

    from twinengine.cli.ai import train as train_command

    app = typer.Typer()
    app.command()(train_command)
    return CliRunner().invoke(app, args)


@pytest.mark.slow
def test_cli_output_and_exit_code_match_one_process(tmp_path: Path) -> None:
    """``twin train --nproc 2`` prints and exits as ``twin train``: here a run the guard
    stops (exit code 3, a warning on stderr)."""
    config = write_example(tmp_path)
    args = [
        str(Path(sys.executable).parent / "twin"),
        "train",
        str(config),
        *QUICK,
        "optimizer={name: sgd, lr: 0.0}",
    ]
    args += ["trainer.epochs=20", "trainer.patience=2", "trainer.guard.window=1"]
    runs = [
        subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
        for command in (args, [*args, "--nproc", "2"])
    ]
    one, two = ({"code": r.returncode, **_printed(r)} for r in runs)
    assert two == one
    assert one["code"] == 3
    assert sum(line.startswith("epoch ") for line in one["stdout"]) == 3
    assert any("stopped by the loss guard" in line for line in one["stderr"])


def _printed(done: subprocess.CompletedProcess) -> dict[str, list[str]]:
    """The lines printed, with the run id masked and MLflow's database set-up left out."""
    stdout = re.sub(r"run \w+ ", "run ID ", done.stdout).splitlines()
    stderr = [line for line in done.stderr.splitlines() if "mlflow.store.db" not in line]
    return {"stdout": stdout, "stderr": stderr}


@pytest.mark.slow
def test_rank_zero_error_reaches_the_launcher(runs: dict[str, Any]) -> None:
    """Rank 0 fails where rank 1 waits on it (an unknown run to resume): no hang, the error."""
    with pytest.raises(NotFoundError, match="--resume nosuchrun: no such MLflow run"):
        launch(runs["config"], [*QUICK, f"tracking.uri={runs['1x4'].tracking_uri}"], "nosuchrun", 2)


@pytest.mark.parametrize(
    ("overrides", "nproc", "message"),
    [
        ([], 0, "--nproc: 0 is not a positive number of processes"),
        (["trainer.batch_size=15"], 2, "trainer.batch_size: 15 is not divisible by the 2"),
        (["trainer.strategy=fsdp"], 2, "trainer.strategy: 'fsdp' is not a strategy; accepted: ddp"),
        (["trainer.strategy=horovod"], 2, "trainer.strategy: 'horovod' needs the horovod package"),
    ],
)
def test_bad_input_is_a_clear_error(
    tmp_path: Path, overrides: list[str], nproc: int, message: str
) -> None:
    if "horovod" in message and importlib.util.find_spec("horovod") is not None:
        pytest.skip("horovod is installed here")
    with pytest.raises(ConfigError, match=re.escape(message)):
        launch(write_example(tmp_path), overrides, nproc=nproc)


def test_deepspeed_without_the_extra_is_a_clear_error(tmp_path: Path) -> None:
    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    with pytest.raises(ConfigError, match="'deepspeed' needs the deepspeed package, which is not"):
        launch(write_example(tmp_path), ["trainer.strategy=deepspeed"], nproc=2)


@pytest.mark.slow
def test_deepspeed_gives_the_weights_of_one_process(runs: dict[str, Any]) -> None:
    pytest.importorskip("deepspeed")
    uri = f"tracking.uri={runs['1x4'].tracking_uri}"
    overrides = [*QUICK, uri, "trainer.strategy=deepspeed"]
    result = launch(runs["config"], overrides, nproc=2)
    reference = weights(runs["1x4"].model_path)
    assert max_difference(reference, weights(result.model_path)) < 1e-5


def test_cli_errors_without_traceback(tmp_path: Path) -> None:
    config = str(write_example(tmp_path))
    for args, message in [
        ([config, "trainer.batch_size=15", "--nproc", "2"], "not divisible by the 2 processes"),
        ([config, "--nproc", "0"], "--nproc: 0 is not a positive number"),
        ([config, "--nodes", "2"], "--nodes/--gpus-per-node: only used with --slurm-script"),
    ]:
        result = _cli(args)
        assert result.exit_code == 1, result.output
        assert message in result.output
        assert "Traceback" not in result.output


def test_failed_workers_without_an_answer(tmp_path: Path) -> None:
    (tmp_path / "torchrun.log").write_text("ChildFailedError: rank 1 (local_rank: 1) exited\n")
    with pytest.raises(DistributedError, match="torchrun exited with 1") as info:
        _read_answer(tmp_path / "result.json", 1, tmp_path)
    assert "ChildFailedError" in (info.value.hint or "")
    answer = tmp_path / "result.json"
    body = {"type": "NotFoundError", "message": "gone", "hint": "look elsewhere"}
    answer.write_text(json.dumps({"error": body}))
    with pytest.raises(NotFoundError, match="gone"):
        _read_answer(answer, 1, tmp_path)


def test_slurm_script_is_valid_bash_with_torchrun(tmp_path: Path) -> None:
    config = write_example(tmp_path)
    out = tmp_path / "train.sbatch"
    args = [str(config), "model.hidden=[8, 8]", "--slurm-script", str(out)]
    result = _cli([*args, "--nodes", "2", "--nproc", "4", "--gpus-per-node", "4"])
    assert result.exit_code == 0, result.output
    assert f"sbatch {out}" in result.output
    text = out.read_text()
    subprocess.run(["bash", "-n", str(out)], check=True)
    assert text.startswith("#!/bin/bash\n")
    assert "{{" not in text
    for line in [
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --gpus-per-node=4",
        "-m torch.distributed.run",
        '--nnodes="$SLURM_JOB_NUM_NODES"',
        "--nproc-per-node=4",
        "--rdzv-backend=c10d",
        '--rdzv-endpoint="$head_node:29500"',
        f"-m twinengine.ai.distributed -- {config.resolve()} 'model.hidden=[8, 8]'",
    ]:
        assert line in text
    # 2 nodes x 4 processes = 8 ranks: a global batch of 12 does not split
    with pytest.raises(ConfigError, match="not divisible by the 8 processes"):
        slurm_script(config, ["trainer.batch_size=12"], nodes=2, nproc=4)


@pytest.mark.slow
def test_slurm_script_runs_torchrun_with_a_rendezvous(tmp_path: Path) -> None:
    """The script on a one-node allocation, with srun and scontrol stood in for."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\nexec "$@"\n')
    (bin_dir / "scontrol").write_text("#!/bin/bash\necho localhost\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_example(tmp_path)
    script = tmp_path / "train.sbatch"
    script.write_text(slurm_script(config, [*QUICK, "trainer.epochs=2"], nproc=2, port=port))
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_JOB_ID": "4242",
    }
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["epoch 1", "epoch 2"]
    assert lines[2].startswith("run ") and "(2 epochs)" in lines[2]

"""Distributed training: the torchrun launcher, the worker entry point, the Slurm script.

``twin train CONFIG --nproc N`` calls :func:`launch`, which checks the config and starts
N processes with ``python -m torch.distributed.run --standalone``, each running this
module (:func:`main`): it builds its strategy from torchrun's environment
(:mod:`twinengine.ai.strategies`: DDP, or DeepSpeed when installed) and calls
:func:`twinengine.ai.trainer.train` with it. ``trainer.batch_size`` is the global batch,
split evenly across the ranks, so the weights follow single-process training. Rank 0
alone tracks (MLflow, TensorBoard, checkpoints, ONNX, PROV) and hands its result or its
error back to the launcher as JSON, so the command prints and exits as with one
process. :func:`slurm_script` fills ``templates/slurm.sh`` for multi-node runs (srun
starts torchrun on each node, which meet at a c10d rendezvous on the first node).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twinengine.ai.strategies import RankZeroFailed, check_trainer, start_strategy
from twinengine.core import errors
from twinengine.core.errors import ConfigError, TwinError

if TYPE_CHECKING:
    from twinengine.ai.trainer import TrainResult


class DistributedError(TwinError):
    """The worker processes of a distributed run failed without reporting an error."""


# -- the launcher -------------------------------------------------------------------------


def worker_args(config_path: str | Path, overrides: Sequence[str], resume: str | None) -> list[str]:
    """The arguments of :func:`main` (options first, then ``--`` and the positionals)."""
    options = ["--resume", resume] if resume else []
    return [*options, "--", str(Path(config_path).resolve()), *overrides]


def launch(
    config_path: str | Path,
    overrides: Sequence[str] = (),
    resume: str | None = None,
    nproc: int = 1,
) -> TrainResult:
    """Train with ``nproc`` processes on this machine; rank 0's :class:`TrainResult`."""
    from twinengine.ai.config import load_config

    if not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"--nproc: {nproc!r} is not a positive number of processes")
    config = load_config(config_path, list(overrides))
    check_trainer(config, nproc)
    if "script" in config:
        from twinengine.ai.script import run_script

        return run_script(config, resume)
    if nproc == 1:
        from twinengine.ai.trainer import train

        return train(config, resume)
    with tempfile.TemporaryDirectory(prefix="twin-ddp-") as tmp:
        folder = Path(tmp)
        answer, logs = folder / "result.json", folder / "logs"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc-per-node={nproc}", f"--log-dir={logs}", "--redirects=3",
            "-m", "twinengine.ai.distributed", "--result", str(answer),
            *worker_args(config_path, overrides, resume),
        ]  # fmt: skip
        env = dict(os.environ)
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
        with open(folder / "torchrun.log", "wb") as agent:
            done = subprocess.run(command, stdout=agent, stderr=subprocess.STDOUT, env=env)
        rank0 = sorted(logs.rglob("0/stderr.log"))
        if answer.is_file() and rank0:  # rank 0's warnings, as one process shows them
            sys.stderr.write(rank0[0].read_text(errors="replace"))
        return _read_answer(answer, done.returncode, folder)


def _read_answer(answer: Path, returncode: int, folder: Path) -> TrainResult:
    from twinengine.ai.trainer import TrainResult

    if answer.is_file():
        payload = json.loads(answer.read_text())
        if "error" in payload:
            error = payload["error"]
            kind = getattr(errors, error["type"], TwinError)
            if not (isinstance(kind, type) and issubclass(kind, TwinError)):
                kind = TwinError
            raise kind(error["message"], hint=error.get("hint"))
        fields = payload["result"]
        for key in ("model_path", "onnx_path"):
            fields[key] = Path(fields[key]) if fields[key] else None
        return TrainResult(**fields)
    tails = []
    for log in [folder / "torchrun.log", *sorted(folder.rglob("stderr.log"))]:
        lines = log.read_text(errors="replace").strip().splitlines()
        if lines:
            tails.append(f"--- {log.relative_to(folder)}\n" + "\n".join(lines[-15:]))
    raise DistributedError(
        f"distributed training failed: torchrun exited with {returncode} before rank 0 "
        "reported a result",
        hint="the last lines the processes wrote:\n" + "\n".join(tails),
    )


def slurm_script(
    config_path: str | Path,
    overrides: Sequence[str] = (),
    resume: str | None = None,
    *,
    nodes: int = 1,
    nproc: int = 1,
    gpus_per_node: int = 0,
    time: str = "01:00:00",
    job_name: str = "twin-train",
    port: int = 29500,
) -> str:
    """A Slurm batch script: ``nodes`` x ``nproc`` ranks, one srun task per node."""
    from twinengine.ai.config import load_config

    for key, value in (("--nodes", nodes), ("--nproc", nproc), ("--gpus-per-node", gpus_per_node)):
        if not isinstance(value, int) or value < (0 if key == "--gpus-per-node" else 1):
            raise ConfigError(f"{key}: {value!r} is not a valid count")
    config = load_config(config_path, list(overrides))
    check_trainer(config, nodes * nproc)
    gpus = (
        f"#SBATCH --gpus-per-node={gpus_per_node}"
        if gpus_per_node
        else "##SBATCH --gpus-per-node=1"
    )
    text = resources.files("twinengine.ai").joinpath("templates/slurm.sh").read_text()
    values = {
        "job_name": job_name,
        "nodes": str(nodes),
        "nproc": str(nproc),
        "cpus_per_task": str(nproc),
        "gpus": gpus,
        "time": time,
        "port": str(port),
        "python": shlex.quote(sys.executable),
        "args": shlex.join(worker_args(config_path, overrides, resume)),
    }
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


# -- one rank -----------------------------------------------------------------------------


def _answer(path: Path | None, result: TrainResult | None, error: TwinError | None) -> None:
    """Rank 0's outcome: JSON for the launcher, or printed like ``twin train``."""
    if path is not None:
        if error is not None:
            body = {"type": type(error).__name__, "message": error.message, "hint": error.hint}
            payload: dict[str, Any] = {"error": body}
        else:
            payload = {"result": json.loads(json.dumps(asdict(result), default=str))}  # type: ignore[arg-type]
        path.write_text(json.dumps(payload))
    elif error is not None:
        print(f"error: {error}", file=sys.stderr)
    elif result is not None:
        lines = result.summary()
        print("\n".join(lines[:-1]))
        if result.stopped:
            print(f"warning: stopped by the loss guard: {result.stopped}", file=sys.stderr)
        print(lines[-1], flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """One rank of a distributed ``twin train``; torchrun starts one per process."""
    parser = argparse.ArgumentParser(
        prog="python -m twinengine.ai.distributed",
        description="One rank of a distributed `twin train` (started by torchrun).",
    )
    parser.add_argument("config", help="training config (YAML)")
    parser.add_argument("overrides", nargs="*", help="KEY=VALUE overrides")
    parser.add_argument("--resume", help="MLflow run id to continue")
    parser.add_argument("--result", type=Path, help="write rank 0's outcome here as JSON")
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    if rank != 0:  # warnings are rank 0's to give
        logging.getLogger("twinengine").setLevel(logging.ERROR)
    from twinengine.ai.config import load_config
    from twinengine.ai.trainer import train

    try:
        config = load_config(args.config, args.overrides)
        strategy = start_strategy(config["trainer"])
        result = train(config, args.resume, strategy=strategy)
    except TwinError as exc:
        if rank == 0:
            _answer(args.result, None, exc)
        return exc.exit_code
    except RankZeroFailed:  # rank 0 says why; leaving the group could wait on it
        return 1
    strategy.close()
    if rank == 0:
        _answer(args.result, result, None)
    return 3 if result.stopped and args.result is None else 0


if __name__ == "__main__":
    sys.exit(main())

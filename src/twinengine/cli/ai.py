"""``twin train``: train a model from a YAML config, tracked in MLflow.

Wired into the ``twin`` application as one command (``app.command("train")(train)``).
``--nproc N`` trains with N DDP processes on this machine and ``--slurm-script`` writes
a multi-node Slurm batch script instead of training (:mod:`twinengine.ai.distributed`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from twinengine.cli.errors import LazyConsole, err_console, handle_errors

console = LazyConsole(highlight=False)


@handle_errors
def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML).")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="KEY=VALUE overrides on dotted paths, e.g. trainer.epochs=3."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", help="MLflow run id to continue from its last checkpoint."),
    ] = None,
    nproc: Annotated[
        int,
        typer.Option(
            "--nproc",
            help="Processes to train with (DDP via torchrun: gloo on the CPU, NCCL on GPUs); "
            "per node with --slurm-script.",
        ),
    ] = 1,
    slurm_script: Annotated[
        Path | None,
        typer.Option(
            "--slurm-script",
            help="Write a Slurm batch script for a multi-node run to this file, don't train.",
        ),
    ] = None,
    nodes: Annotated[int, typer.Option("--nodes", help="Nodes of the --slurm-script job.")] = 1,
    gpus_per_node: Annotated[
        int, typer.Option("--gpus-per-node", help="GPUs per node of the --slurm-script job.")
    ] = 0,
    export_model: Annotated[
        Path | None,
        typer.Option("--export-model", help="Copy the trained model files into this folder."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as one JSON object.")
    ] = False,
) -> None:
    """Train the model CONFIG describes; values are YAML (model.hidden=[32,32])."""
    from twinengine.ai.distributed import launch
    from twinengine.ai.distributed import slurm_script as write_script
    from twinengine.core.errors import ConfigError

    if slurm_script is not None:
        text = write_script(
            config, overrides or [], resume, nodes=nodes, nproc=nproc, gpus_per_node=gpus_per_node
        )
        try:
            slurm_script.write_text(text)
            slurm_script.chmod(0o755)
        except OSError as exc:
            raise ConfigError(f"--slurm-script: cannot write {slurm_script} ({exc})") from exc
        console.print(f"wrote {slurm_script}: submit it with sbatch {slurm_script}", soft_wrap=True)
        return
    if nodes != 1 or gpus_per_node:
        raise ConfigError(
            "--nodes/--gpus-per-node: only used with --slurm-script "
            "(multi-node runs go through a Slurm batch script)"
        )
    result = launch(config, overrides or [], resume, nproc)
    exported = _export(result, export_model) if export_model is not None else []
    if result.stopped:
        _announce_guard(result)
    if as_json:
        print(json.dumps(_as_dict(result, exported)))
    else:
        lines = result.summary()
        for line in lines[:-1]:
            console.print(line)
        if result.stopped:
            err_console.print(
                f"[bold yellow]warning:[/] stopped by the loss guard: {result.stopped}"
            )
        console.print(lines[-1])
    if result.stopped:
        raise typer.Exit(3)


def _export(result: Any, folder: Path) -> list[str]:
    """Copy the model files (ONNX, state_dict with what rebuilds it, input scaling) into
    ``folder``: what ``twin models serve FOLDER`` and ``load_bundle`` open."""
    import shutil

    from twinengine.ai.artifacts import MODEL_FILES

    if result.model_path is None:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    found = [result.model_path.parent / n for n in MODEL_FILES]
    return [shutil.copy2(f, folder / f.name) for f in found if f.is_file()]


def _as_dict(result: Any, exported: list[str]) -> dict[str, Any]:
    last = result.history[-1] if result.history else {}
    metrics = {k: v for k, v in last.items() if k != "epoch"}
    return {
        "run_id": result.run_id,
        "tracking_uri": result.tracking_uri,
        "epochs": result.epochs_done,
        "loss": metrics.get("val_loss", metrics.get("train_loss")),
        "metrics": metrics,
        "stopped": result.stopped,
        "exported": [str(p) for p in exported],
    }


def _announce_guard(result: Any) -> None:
    """The guard's stop as an ``ai`` event (for triggers) and a notification."""
    from twinengine.ai.events import announce

    announce(
        "guard",
        result.run_id,
        f"training run {result.run_id[:8]} stopped by the loss guard",
        str(result.stopped),
        {"run_id": result.run_id, "reason": result.stopped, "epoch": result.epochs_done},
        version=str(result.epochs_done),
    )

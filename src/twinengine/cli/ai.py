"""``twin train``: train a model from a YAML config, tracked in MLflow.

Wired into the ``twin`` application as one command (``app.command("train")(train)``);
``app`` is the same command as a Typer group for ``twin ai train`` should one be wanted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twinengine.cli.errors import LazyConsole, err_console, handle_errors

app = typer.Typer(help="Train models from YAML configs (MLflow-tracked).", no_args_is_help=True)
console = LazyConsole(highlight=False)


@app.command("train")
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
) -> None:
    """Train the model CONFIG describes; values are YAML (model.hidden=[32,32])."""
    from twinengine.ai import load_config
    from twinengine.ai import train as run_training

    loaded = load_config(config, overrides or [])
    result = run_training(loaded, resume=resume)
    for row in result.history:
        shown = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
        console.print(f"epoch {int(row['epoch'])}: {shown}")
    if result.stopped:
        err_console.print(f"[bold yellow]warning:[/] stopped by the loss guard: {result.stopped}")
    console.print(f"run {result.run_id} ({result.epochs_done} epochs) at {result.tracking_uri}")
    if result.stopped:
        raise typer.Exit(3)

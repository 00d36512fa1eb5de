"""What a training run leaves behind, built-in loop or training script alike.

:class:`TrainResult` is what a run produced (its MLflow run id, epochs, metric history,
why it stopped, the model files); :func:`save_weights` saves and logs a module's
``state_dict`` as the run's model and, given an example input, its ONNX export (a
bonus, never a reason to fail); :func:`training_activity` records the run as a PROV
activity when provenance is on (a record, never a reason to fail either).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from twinengine.ai.artifacts import ONNX_FILE, STATE_FILE
from twinengine.ai.tracking import RunTracker

log = logging.getLogger("twinengine.ai")


@dataclass
class TrainResult:
    """What a training run produced."""

    run_id: str
    tracking_uri: str
    epochs_done: int
    start_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: str | None = None
    model_path: Path | None = None
    onnx_path: Path | None = None

    def summary(self) -> list[str]:
        """What ``twin train`` prints: a line per epoch, then the run id and tracking URI."""
        lines = []
        for row in self.history:
            shown = "  ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
            lines.append(f"epoch {int(row['epoch'])}: {shown}")
        return [*lines, f"run {self.run_id} ({self.epochs_done} epochs) at {self.tracking_uri}"]


@contextlib.contextmanager
def training_activity(enabled: bool, config: dict[str, Any]) -> Iterator[Any]:
    """A PROV activity for the run, or ``None`` when disabled or unavailable."""
    if not enabled:
        yield None
        return
    try:
        from twinengine.provenance import activity

        manager = activity("train", twin_experiment=config["tracking"]["experiment"])
        act = manager.__enter__()
    except Exception as exc:  # provenance is a record, never a reason to fail training
        log.warning("provenance not recorded: %s", exc)
        yield None
        return
    try:
        yield act
    finally:
        with contextlib.suppress(Exception):
            manager.__exit__(None, None, None)


def _export_onnx(model: torch.nn.Module, example: torch.Tensor, path: Path) -> bool:
    """Export ``model`` to ONNX at ``path`` (batch size free); whether that worked."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
        return True
    except Exception as exc:  # export is a bonus: the state_dict is always there
        log.warning("ONNX export failed: %s", exc)
        return False


def save_weights(
    module: torch.nn.Module,
    work: Path,
    tracker: RunTracker,
    result: TrainResult,
    example: Any = None,
) -> None:
    """Save and log ``module``'s ``state_dict`` as the run's model, and its ONNX export
    when an ``example`` input is given (and the export works)."""
    result.model_path = work / STATE_FILE
    torch.save(module.state_dict(), result.model_path)
    tracker.log_artifact(result.model_path, "model")
    onnx = work / ONNX_FILE
    if example is not None and _export_onnx(module.eval(), example, onnx):
        result.onnx_path = onnx
        tracker.log_artifact(onnx, "model")

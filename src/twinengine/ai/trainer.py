"""The training loop: build everything from the config, train, guard, checkpoint, track.

:func:`train` turns a checked config (:func:`twinengine.ai.config.load_config`) into a
seeded PyTorch run on the CPU: per-step training loss and per-epoch training/validation
loss and metrics go to MLflow and TensorBoard; a checkpoint is uploaded every
``trainer.checkpoint_every`` epochs so that ``resume=RUN_ID`` continues after the last
saved epoch; the :class:`LossGuard` stops a run whose validation loss exceeds
``trainer.guard.max_loss``, turns NaN/inf, or whose sliding-window average has not
improved for ``trainer.patience`` epochs. The final model is logged as a ``state_dict``
(and ONNX when export works), and the run is recorded as a PROV activity.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twinengine.ai.artifacts import META_FILE, ONNX_FILE, SCALING_FILE, STATE_FILE
from twinengine.ai.config import build, flatten
from twinengine.ai.data import PreparedData, load_data
from twinengine.ai.models import LOSSES, METRICS, MODELS, OPTIMIZERS
from twinengine.ai.strategies import Strategy, check_trainer
from twinengine.ai.tracking import RunTracker, check_tracking
from twinengine.core.errors import ConfigError

log = logging.getLogger("twinengine.ai")


class LossGuard:
    """Decides, epoch by epoch, whether the validation loss left its envelope."""

    def __init__(self, max_loss: float | None, window: int, patience: int | None) -> None:
        self.max_loss, self.window, self.patience = max_loss, max(int(window), 1), patience
        self.losses: list[float] = []
        self.best = math.inf
        self.stale = 0

    def check(self, loss: float) -> str | None:
        """The reason to stop after this epoch's ``loss``, or ``None`` to go on."""
        self.losses.append(loss)
        if not math.isfinite(loss):
            return f"validation loss is {loss}"
        if self.max_loss is not None and loss > self.max_loss:
            return f"validation loss {loss:.4g} exceeds trainer.guard.max_loss={self.max_loss}"
        average = sum(self.losses[-self.window :]) / len(self.losses[-self.window :])
        if average < self.best:
            self.best, self.stale = average, 0
        else:
            self.stale += 1
        if self.patience is not None and self.stale >= self.patience:
            return (
                f"the {self.window}-epoch average validation loss has not improved for "
                f"{self.stale} epochs (trainer.patience={self.patience})"
            )
        return None

    @classmethod
    def from_trainer(cls, trainer: dict[str, Any]) -> LossGuard:
        """The guard a config's checked ``trainer`` section asks for."""
        return cls(trainer["guard"]["max_loss"], trainer["guard"]["window"], trainer["patience"])

    def state(self) -> dict[str, Any]:
        return {"losses": self.losses, "best": self.best, "stale": self.stale}

    def load(self, state: dict[str, Any]) -> None:
        self.losses, self.best, self.stale = state["losses"], state["best"], state["stale"]


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


def _tensors(data: PreparedData, classes: bool, device: Any = "cpu") -> tuple[torch.Tensor, ...]:
    arrays = (data.x_train, data.y_train, data.x_val, data.y_val)
    out = [torch.from_numpy(a).to(device) for a in arrays]
    if classes:  # cross entropy wants class indices
        out[1], out[3] = out[1].reshape(-1).long(), out[3].reshape(-1).long()
    return tuple(out)


@contextlib.contextmanager
def _provenance(enabled: bool, config: dict[str, Any]) -> Iterator[Any]:
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


def train(
    config: dict[str, Any],
    resume: str | None = None,
    *,
    tags: dict[str, Any] | None = None,
    on_run: Callable[[str], None] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    strategy: Strategy | None = None,
) -> TrainResult:
    """Train the model ``config`` describes; ``resume`` continues an MLflow run id.

    ``tags`` are set on the run as it starts, ``on_run`` is told its id, and
    ``on_epoch(epoch, metrics)`` is called after each epoch's metrics are logged (an HPO
    search reports them and may raise to stop the run — e.g. a pruned trial).
    ``strategy`` is this process's share of a distributed run (one rank of
    :mod:`twinengine.ai.distributed`); by default training runs in this one process."""
    if "script" in config:
        raise ConfigError(
            "script: a training script runs through twin train (twinengine.ai.launch), "
            "which calls its main(run); train() builds a model from model/data sections"
        )
    strategy = strategy or Strategy()
    trainer, tracking = config["trainer"], config["tracking"]
    check_tracking(tracking)
    check_trainer(config, strategy.world_size)
    seed = int(trainer["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed)
    data = load_data(config["data"], config.get("_config_dir", "."), seed=seed)
    loss_fn = build(config["loss"], "loss", LOSSES)
    classes = isinstance(loss_fn, torch.nn.CrossEntropyLoss)
    x_train, y_train, x_val, y_val = _tensors(data, classes, strategy.device)
    out_features = int(y_train.max()) + 1 if classes else data.out_features
    model = build(
        config["model"],
        "model",
        MODELS,
        in_features=data.input_shape[-1],
        out_features=out_features,
        input_shape=data.input_shape,
    )
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model: built a {type(model).__name__}, not a torch.nn.Module")
    model.to(strategy.device)
    optimizer = build(config["optimizer"], "optimizer", OPTIMIZERS, model.parameters())
    for name in config["metrics"]:
        if name not in METRICS:
            raise ConfigError(
                f"metrics: {name!r} is not a built-in metric; built-ins: {', '.join(METRICS)}"
            )
    with torch.no_grad():
        probe = model(x_train[:2])
    if not classes and tuple(probe.shape[1:]) != tuple(y_train.reshape(len(y_train), -1).shape[1:]):
        raise ConfigError(
            f"model: output shape {tuple(probe.shape[1:])} does not match the target shape "
            f"{tuple(y_train.shape[1:])} of data.target {data.targets}"
        )
    if not classes:
        y_train, y_val = y_train.reshape(len(y_train), -1), y_val.reshape(len(y_val), -1)
    guard = LossGuard.from_trainer(trainer)
    tracker = strategy.tracker(
        lambda: RunTracker(
            tracking["experiment"],
            tracking["uri"],
            resume,
            tracking["run_name"],
            tracking["tensorboard"],
        )
    )
    if tags:
        tracker.set_tags(tags)
    if on_run is not None:
        on_run(tracker.run_id)
    work = Path(tempfile.mkdtemp(prefix=f"twin-train-{tracker.run_id[:8]}-"))
    start_epoch, step = 1, 0
    if resume:
        checkpoint = strategy.share(
            lambda: torch.load(
                tracker.download("checkpoints/last.pt", work),
                weights_only=False,
                map_location="cpu",
            )
        )
        try:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise ConfigError(
                f"model: the checkpoint of run {resume} does not fit ({exc})"
            ) from exc
        guard.load(checkpoint["guard"])
        torch.set_rng_state(checkpoint["rng"])
        start_epoch, step = checkpoint["epoch"] + 1, checkpoint["step"]
        tracker.set_tags({"twin.resumed_from_epoch": checkpoint["epoch"]})
    else:
        tracker.log_params(flatten(config))
        tracker.set_tags(
            {"twin.data": data.path, "twin.features": data.features, "twin.target": data.targets}
        )
    trained = strategy.wrap(model, optimizer)
    if strategy.is_main:
        tracker.log_config(config, work)
    result = TrainResult(tracker.run_id, tracker.uri, start_epoch - 1, start_epoch)
    status = "FAILED"
    try:
        with _provenance(tracking["provenance"] and strategy.is_main, config) as act:
            if act is not None:
                act.used(str(data.path), role="dataset")
            for epoch in range(start_epoch, trainer["epochs"] + 1):
                step = _epoch(
                    trained,
                    optimizer,
                    loss_fn,
                    x_train,
                    y_train,
                    trainer,
                    epoch,
                    step,
                    tracker,
                    strategy,
                )
                row = strategy.share(
                    lambda: _evaluate(
                        model, loss_fn, x_train, y_train, x_val, y_val, config["metrics"]
                    )
                )
                row["epoch"] = epoch
                result.history.append(row)
                result.epochs_done = epoch
                tracker.log_metrics({k: v for k, v in row.items() if k != "epoch"}, epoch)
                tracker.log_system(epoch, len(x_train))
                if on_epoch is not None:
                    on_epoch(epoch, row)
                reason = guard.check(row["val_loss"] if len(x_val) else row["train_loss"])
                last = reason is not None or epoch == trainer["epochs"]
                if strategy.is_main and (epoch % trainer["checkpoint_every"] == 0 or last):
                    path = work / "last.pt"
                    torch.save(
                        {
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "epoch": epoch,
                            "step": step,
                            "guard": guard.state(),
                            "rng": torch.get_rng_state(),
                        },
                        path,
                    )
                    tracker.log_artifact(path, "checkpoints")
                tracker.flush()
                if reason is not None:
                    result.stopped = reason
                    if strategy.is_main:
                        log.warning(
                            "training stopped by the loss guard at epoch %d: %s", epoch, reason
                        )
                    tracker.set_tags({"twin.guard": "stopped", "twin.guard_reason": reason})
                    tracker.log_metrics({"guard_stopped": 1.0}, epoch)
                    break
            if strategy.is_main:
                shapes = {"model": config["model"], "out_features": out_features}
                _save_model(
                    model.cpu(), data, shapes, trainer, x_train[:1].cpu(), work, tracker, result
                )
            if act is not None:
                act.generated(str(result.model_path), role="model")
        status = "FINISHED"
    finally:
        tracker.end(status)
    return result


def _save_model(
    model: torch.nn.Module,
    data: PreparedData,
    shapes: dict[str, Any],
    trainer: dict[str, Any],
    example: torch.Tensor,
    work: Path,
    tracker: RunTracker,
    result: TrainResult,
) -> None:
    """Log the final ``state_dict`` with what rebuilds its model (``model_meta.json``:
    serving without ONNX), the scaling statistics and the ONNX export."""
    meta = {**shapes, "input_shape": list(data.input_shape)}
    (work / META_FILE).write_text(json.dumps(meta, default=str))
    tracker.log_artifact(work / META_FILE, "model")
    if data.mean is not None and data.std is not None:
        scaling = work / SCALING_FILE
        stats = {"mean": data.mean.tolist(), "std": data.std.tolist()}
        scaling.write_text(json.dumps(stats))
        tracker.log_artifact(scaling, "model")
    save_weights(model, work, tracker, result, example if trainer["onnx"] else None)


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


def _epoch(
    model: torch.nn.Module,
    optimizer: Any,
    loss_fn: Any,
    x: torch.Tensor,
    y: torch.Tensor,
    trainer: dict[str, Any],
    epoch: int,
    step: int,
    tracker: RunTracker,
    strategy: Strategy,
) -> int:
    """One pass over the seeded permutation of the training set, a global batch a step.

    Under a distributed ``strategy`` each rank takes its shard of every global batch and
    the gradients are averaged, so the weights follow single-process training."""
    model.train()
    generator = torch.Generator().manual_seed(int(trainer["seed"]) * 100_003 + epoch)
    order = torch.randperm(len(x), generator=generator)
    size, every = trainer["batch_size"], trainer["log_every_n_steps"]
    own_step = getattr(model, "train_step", None)  # a model that trains itself (the GAN)
    for start in range(0, len(x), size):
        if own_step is not None:
            batch = order[start : start + size]
            loss = own_step(x[batch], y[batch], loss_fn)
        else:
            optimizer.zero_grad()
            loss = strategy.batch_loss(model, loss_fn, x, y, order[start : start + size])
            strategy.backward(loss)
            strategy.step(optimizer)
        step += 1
        if step % every == 0:
            tracker.log_metrics({"train_loss_step": strategy.global_loss(loss)}, step)
    return step


def _evaluate(
    model: torch.nn.Module,
    loss_fn: Any,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    metrics: list[str],
) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        row = {"train_loss": float(loss_fn(model(x_train), y_train))}
        if len(x_val):
            pred = model(x_val)
            row["val_loss"] = float(loss_fn(pred, y_val))
            for name in metrics:
                row[f"val_{name}"] = METRICS[name](pred, y_val)
    return row

"""The training loop: build everything from the config, train, guard, checkpoint, track.

:func:`train` turns a checked config (:func:`twinengine.ai.config.load_config`) into a
seeded PyTorch run on the CPU: per-step training loss and per-epoch training/validation
loss and metrics go to MLflow and TensorBoard; a checkpoint is uploaded every
``trainer.checkpoint_every`` epochs so that ``resume=RUN_ID`` continues after the last
saved epoch; the :class:`~twinengine.ai.lossguard.LossGuard` stops a run whose
validation loss exceeds ``trainer.guard.max_loss``, turns NaN/inf, or whose
sliding-window average has not improved for ``trainer.patience`` epochs. The final
model is logged as a ``state_dict`` (and ONNX when export works), and the run is
recorded as a PROV activity (:mod:`twinengine.ai.training_outputs`, which also holds
:class:`TrainResult`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from twinengine.ai.artifacts import META_FILE, SCALING_FILE
from twinengine.ai.config import build, flatten
from twinengine.ai.data import PreparedData, load_data
from twinengine.ai.lossguard import LossGuard
from twinengine.ai.models import LOSSES, METRICS, MODELS, OPTIMIZERS
from twinengine.ai.strategies import Strategy, check_trainer
from twinengine.ai.tracking import RunTracker, check_tracking
from twinengine.ai.training_outputs import TrainResult, save_weights, training_activity
from twinengine.core.errors import ConfigError

__all__ = ["LossGuard", "TrainResult", "save_weights", "train"]

log = logging.getLogger("twinengine.ai")


def _tensors(data: PreparedData, classes: bool, device: Any = "cpu") -> tuple[torch.Tensor, ...]:
    arrays = (data.x_train, data.y_train, data.x_val, data.y_val)
    out = [torch.from_numpy(a).to(device) for a in arrays]
    if classes:  # cross entropy wants class indices
        out[1], out[3] = out[1].reshape(-1).long(), out[3].reshape(-1).long()
    return tuple(out)


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
        with training_activity(tracking["provenance"] and strategy.is_main, config) as act:
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

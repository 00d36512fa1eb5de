"""AI: config-driven model training with MLflow tracking, checkpoints and a loss guard.

Public interface (what ``twin train`` calls, and the REST API will):

- :func:`load_config` — a training YAML with ``key=value`` overrides, checked;
  :func:`parse_override` and :func:`apply_overrides` for the override syntax.
- :func:`train` — build model, data, loss and optimizer from the config and train,
  tracked in MLflow (SQLite under ``$TWIN_HOME`` by default); returns a
  :class:`TrainResult`. ``resume=RUN_ID`` continues from the run's last checkpoint.
- :func:`load_data` — the ``data`` section as train/validation arrays.
- :data:`MODELS`, :data:`LOSSES`, :data:`OPTIMIZERS`, :data:`METRICS` — the built-ins a
  config names by a short ``name``; anything else is a ``_target_`` dotted path.
- :class:`LossGuard`, :class:`RunTracker`, :func:`tracking_uri`.
- :func:`launch` — train with N DDP processes (``twin train --nproc N``);
  :func:`slurm_script` — a multi-node Slurm batch script.
- :func:`announce` — an AI happening as an ``ai`` event and a notification.
- :func:`tool_path` — the packaged CWL tools (train, tune, register, promote, predict,
  serve).

Names are imported on first use: ``twin --help`` never imports torch or MLflow.
"""

from __future__ import annotations

from twinengine.core.lazy import lazy_exports

_EXPORTS = {
    "apply_overrides": "twinengine.ai.config",
    "build": "twinengine.ai.config",
    "flatten": "twinengine.ai.config",
    "load_config": "twinengine.ai.config",
    "parse_override": "twinengine.ai.config",
    "PreparedData": "twinengine.ai.data",
    "load_data": "twinengine.ai.data",
    "LOSSES": "twinengine.ai.models",
    "METRICS": "twinengine.ai.models",
    "MODELS": "twinengine.ai.models",
    "OPTIMIZERS": "twinengine.ai.models",
    "RunTracker": "twinengine.ai.tracking",
    "tracking_uri": "twinengine.ai.tracking",
    "LossGuard": "twinengine.ai.lossguard",
    "TrainResult": "twinengine.ai.training_outputs",
    "train": "twinengine.ai.trainer",
    "ModelRegistry": "twinengine.ai.registry",
    "ModelServer": "twinengine.ai.serving",
    "launch": "twinengine.ai.distributed",
    "slurm_script": "twinengine.ai.distributed",
    "announce": "twinengine.ai.events",
    "tool_path": "twinengine.ai.cwltools",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

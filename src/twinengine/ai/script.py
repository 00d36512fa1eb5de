"""A developer's own training script, tracked like a built-in training run.

A config with a ``script`` section (``script: train.py`` or ``{path: train.py, entry:
main, options: {...}}``, relative to the config file) makes ``twin train`` import that
file and call ``entry(run)`` with a :class:`ScriptRun`: the checked config
(``run.config``; ``run.options`` are the script's own settings, overridable on the
command line as ``script.options.lr=0.1``), ``run.log(epoch, **metrics)`` — logged to MLflow and
TensorBoard and checked by the loss-envelope guard, whose verdict it returns so the
script can stop — ``run.log_artifact(path)``, ``run.save_model(module, example)`` (the
``state_dict`` and an ONNX export under the run's ``model`` folder, so that the registry,
serving and batch inference take it like any trained model) and ``run.tracker`` for
anything else. TwinEngine opens and closes the MLflow run (FAILED when the script
raises), logs the config and the script, and records the PROV activity; the result is
the same :class:`~twinengine.ai.training_outputs.TrainResult` as ``twin train`` prints.
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twinengine.ai.config import flatten
from twinengine.ai.lossguard import LossGuard
from twinengine.ai.tracking import RunTracker, check_tracking
from twinengine.ai.training_outputs import TrainResult, save_weights, training_activity
from twinengine.core.errors import ConfigError


class ScriptRun:
    """What a training script gets (see the module docstring)."""

    def __init__(self, config: dict[str, Any], tracker: RunTracker, work: Path) -> None:
        self.config = config
        self.options: dict[str, Any] = config["script"]["options"]  # the script's settings
        self.tracker = tracker
        self.work = work
        self.guard = LossGuard.from_trainer(config["trainer"])
        self.result = TrainResult(tracker.run_id, tracker.uri, 0, 1)

    def log(self, epoch: int, **metrics: float) -> str | None:
        """Log an epoch's metrics; the guard's reason to stop (``None``: go on). The guard
        watches ``val_loss``, else ``loss`` or ``train_loss``."""
        row = {k: float(v) for k, v in metrics.items()}
        self.tracker.log_metrics(row, int(epoch))
        self.result.history.append({**row, "epoch": float(epoch)})
        self.result.epochs_done = int(epoch)
        watched = next((row[k] for k in ("val_loss", "loss", "train_loss") if k in row), None)
        reason = self.guard.check(watched) if watched is not None else None
        if reason is not None and self.result.stopped is None:
            self.result.stopped = reason
            self.tracker.set_tags({"twin.guard": "stopped", "twin.guard_reason": reason})
        self.tracker.flush()
        return reason

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.tracker.log_artifact(path, folder)

    def save_model(self, module: Any, example: Any = None) -> None:
        """Save a ``torch.nn.Module`` as the run's model (and ONNX, given an example input)."""
        save_weights(module, self.work, self.tracker, self.result, example)


def _entry(config: dict[str, Any]) -> tuple[Path, Callable[[ScriptRun], Any]]:
    spec = config["script"]
    path = Path(spec["path"]).expanduser()
    if not path.is_absolute():
        path = Path(config.get("_config_dir", ".")) / path
    if not path.is_file():
        raise ConfigError(f"script.path: no such file {path}")
    name = f"twin_script_{abs(hash(str(path)))}"
    loader = importlib.util.spec_from_file_location(name, path)
    if loader is None or loader.loader is None:
        raise ConfigError(f"script.path: {path} is not a Python file")
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    try:
        loader.loader.exec_module(module)
    except Exception as exc:  # the developer's code: say where
        raise ConfigError(f"script.path: importing {path} failed ({exc})") from exc
    function = getattr(module, spec["entry"], None)
    if not callable(function):
        raise ConfigError(f"script.entry: {path} has no function {spec['entry']!r}")
    return path, function


def run_script(config: dict[str, Any], resume: str | None = None) -> TrainResult:
    """Run the config's training script as one tracked training run."""
    if resume:
        raise ConfigError("--resume: a training script resumes itself (run.tracker has the run)")
    path, function = _entry(config)
    tracking = config["tracking"]
    check_tracking(tracking)
    tracker = RunTracker(
        tracking["experiment"], tracking["uri"], None, tracking["run_name"], tracking["tensorboard"]
    )
    work = Path(tempfile.mkdtemp(prefix=f"twin-script-{tracker.run_id[:8]}-"))
    tracker.log_params(flatten({k: v for k, v in config.items() if k not in ("model", "data")}))
    tracker.set_tags({"twin.script": str(path)})
    tracker.log_config(config, work)
    tracker.log_artifact(path, "script")
    run = ScriptRun(config, tracker, work)
    status = "FAILED"
    try:
        with training_activity(tracking["provenance"], config) as act:
            if act is not None:
                act.used(str(path), role="script")
            function(run)
            if act is not None and run.result.model_path is not None:
                act.generated(str(run.result.model_path), role="model")
        status = "FINISHED"
    finally:
        tracker.end(status)
    return run.result

"""Hyper-parameter search: Optuna trials over a training config, each an MLflow child run.

A tuning config is a training config plus a ``search`` section (``space``: dotted keys to
ranges; ``trials``, ``sampler``, ``pruner``, ``metric``, ``backend``…: docs/ai-tune.md).
Each trial sets its sampled values as dotted-path overrides and runs the trainer as an
MLflow child run of one parent run, reporting each epoch's metric so a pruner can stop
it; the parent gets the best params, value and ``best_config.yaml``. ``backend: ray``
(:mod:`twinengine.ai.tune_ray`) shares :func:`parent_run`, :func:`run_trial`, :func:`finish`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from twinengine.ai import trainer as _trainer
from twinengine.ai.config import SECTIONS, apply_overrides, check_config, read_config_file
from twinengine.ai.tracking import RunTracker, tracking_uri
from twinengine.core.errors import ConfigError

SEARCH_DEFAULTS: dict[str, Any] = {
    "space": None,
    "trials": 10,
    "sampler": "tpe",
    "pruner": "none",
    "metric": "val_loss",
    "direction": "minimize",
    "storage": None,
    "study": None,
    "workers": 1,
    "seed": None,
    "register": None,
    "backend": "optuna",
}
BACKENDS = ("optuna", "ray")
SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("asha", "hyperband", "median", "none")
TYPES = ("categorical", "float", "int")
DIRECTIONS = ("maximize", "minimize")


@dataclass
class TuneResult:
    """What a search produced: the best trial and its configuration."""

    study: str
    parent_run_id: str
    tracking_uri: str
    best_params: dict[str, Any]
    best_value: float
    best_run_id: str | None
    best_config: dict[str, Any]
    trials: int
    pruned: int
    registered: Any = None

    @property
    def best_yaml(self) -> str:
        return yaml.safe_dump(self.best_config, sort_keys=False)


def load_search(
    path: str | Path, overrides: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checked training config and ``search`` section in ``path``, overrides applied
    (overrides may set search keys too: ``search.trials=4``)."""
    path = Path(path)
    raw = apply_overrides(read_config_file(path), overrides or [])
    if "search" not in raw:
        raise ConfigError("search: missing; twin tune needs a search section with a space")
    search = raw.pop("search")
    config = check_config(raw)
    config["_config_dir"] = str(path.resolve().parent)
    return config, check_search(search, config)


def check_search(search: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Validate the ``search`` section against the (checked) training ``config``."""
    if not isinstance(search, dict):
        raise ConfigError(f"search: must be a mapping; keys: {', '.join(SEARCH_DEFAULTS)}")
    unknown = sorted(set(search) - set(SEARCH_DEFAULTS))
    if unknown:
        raise ConfigError(
            f"search.{unknown[0]}: not a known key; accepted: {', '.join(SEARCH_DEFAULTS)}"
        )
    result = {**SEARCH_DEFAULTS, **search}
    choices = {"sampler": SAMPLERS, "pruner": PRUNERS, "direction": DIRECTIONS, "backend": BACKENDS}
    for key, accepted in choices.items():
        value = result[key]
        value = "none" if value is None and key == "pruner" else str(value).lower()
        if value not in accepted:
            raise ConfigError(f"search.{key}: {result[key]!r}; accepted: {', '.join(accepted)}")
        result[key] = value
    for key in ("trials", "workers"):
        value = result[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"search.{key}: {value!r} is not a positive integer")
    metrics = ["train_loss", "val_loss"] + [f"val_{m}" for m in config["metrics"]]
    if result["metric"] not in metrics:
        raise ConfigError(f"search.metric: {result['metric']!r}; accepted: {', '.join(metrics)}")
    space = result["space"]
    if not isinstance(space, dict) or not space:
        raise ConfigError(
            "search.space: must map dotted config keys to ranges, e.g. "
            "optimizer.lr: {type: float, low: 1.0e-4, high: 0.1, log: true}"
        )
    flat = _flatten_space(space)
    result["space"] = {k: _check_param(k, v, result["sampler"]) for k, v in flat.items()}
    if result["study"] is None:
        result["study"] = f"{config['tracking']['experiment']}-tune"
    if result["backend"] == "ray":
        from twinengine.ai.tune_ray import check_ray

        check_ray(result)
    return result


def _flatten_space(space: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{optimizer: {lr: {type: ...}}}`` → ``{'optimizer.lr': {type: ...}}``, as overrides
    ``search.space.optimizer.lr=...`` create them; a later entry (an override) wins."""
    flat: dict[str, Any] = {}
    for key, value in space.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and "type" not in value:
            flat.update(_flatten_space(value, dotted + "."))
        else:
            flat.pop(dotted, None)
            flat[dotted] = value
    return flat


def _check_param(key: str, spec: Any, sampler: str) -> dict[str, Any]:
    where = f"search.space.{key}"
    if key.split(".")[0] not in SECTIONS or any(not p for p in key.split(".")):
        raise ConfigError(f"{where}: not a dotted config key; sections: {', '.join(SECTIONS)}")
    if not isinstance(spec, dict) or spec.get("type") not in TYPES:
        got = spec.get("type") if isinstance(spec, dict) else spec
        raise ConfigError(f"{where}.type: {got!r}; accepted: {', '.join(TYPES)}")
    kind = spec["type"]
    ranges = {"low", "high", "log", "step"}
    allowed = {"categorical": {"choices"}, "float": ranges, "int": ranges}
    extra = sorted(set(spec) - allowed[kind] - {"type"})
    if extra:
        raise ConfigError(
            f"{where}.{extra[0]}: not a key of a {kind} range; "
            f"accepted: type, {', '.join(sorted(allowed[kind]))}"
        )
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices: must be a non-empty list of values")
        return {"type": kind, "choices": choices}
    number = float if kind == "float" else int
    for bound in ("low", "high"):
        value = spec.get(bound)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}.{bound}: {value!r} is not a number ({kind} range)")
        if kind == "int" and not isinstance(value, int):
            raise ConfigError(f"{where}.{bound}: {value!r} is not an integer (int range)")
    low, high, log = number(spec["low"]), number(spec["high"]), bool(spec.get("log", False))
    if low > high:
        raise ConfigError(f"{where}: low {low} is above high {high}")
    if log and low <= 0:
        raise ConfigError(f"{where}.low: {low} must be > 0 with log: true")
    step = spec.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float))):
        raise ConfigError(f"{where}.step: {step!r} is not a number")
    if step is not None and log:
        raise ConfigError(f"{where}: give step or log: true, not both")
    if sampler == "grid" and kind == "float" and step is None:
        raise ConfigError(f"{where}: sampler grid needs step or type: categorical here")
    return {"type": kind, "low": low, "high": high, "log": log, "step": step}


def _token(value: Any) -> Any:
    """A value Optuna can store as a categorical choice (lists/mappings as JSON text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value)


def _grid(spec: dict[str, Any]) -> list[Any]:
    if spec["type"] == "categorical":
        return [_token(c) for c in spec["choices"]]
    step = spec["step"] or 1
    count = math.floor((spec["high"] - spec["low"]) / step + 1e-9) + 1
    return [spec["low"] + i * step for i in range(count)]


def _suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Sample one value per space entry; returns the config values (lists decoded)."""
    values: dict[str, Any] = {}
    for key, spec in space.items():
        if spec["type"] == "categorical":
            tokens = [_token(c) for c in spec["choices"]]
            picked = trial.suggest_categorical(key, tokens)
            values[key] = spec["choices"][tokens.index(picked)]
        else:
            is_int = spec["type"] == "int"
            suggest = trial.suggest_int if is_int else trial.suggest_float
            step = int(spec["step"] or 1) if is_int else spec["step"]
            values[key] = suggest(key, spec["low"], spec["high"], step=step, log=spec["log"])
    return values


def with_params(config: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every ``dotted.key: value`` set through the override machinery."""
    base = {k: v for k, v in config.items() if not k.startswith("_")}
    overrides = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    result = check_config(apply_overrides(base, overrides))
    result.update({key: value for key, value in config.items() if key.startswith("_")})
    return result


def _sampler(search: dict[str, Any]) -> Any:
    import optuna

    seed = search["seed"]
    if search["sampler"] == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search["sampler"] == "grid":
        grid = {key: _grid(spec) for key, spec in search["space"].items()}
        return optuna.samplers.GridSampler(grid, seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def _pruner(search: dict[str, Any], epochs: int) -> Any:
    import optuna

    name = search["pruner"]
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    if name == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    return optuna.pruners.NopPruner()


@dataclass
class Trial:
    """One trial as either backend saw it; ``state`` as Optuna names it, in lower case."""

    number: int
    values: dict[str, Any]
    value: float | None
    run_id: str | None
    state: str = "complete"


@contextlib.contextmanager
def parent_run(config: dict[str, Any], search: dict[str, Any]) -> Iterator[RunTracker]:
    """The search's MLflow parent run, ended ``FINISHED`` or, on an error, ``FAILED``."""
    tracking, name = config["tracking"], search["study"]
    parent = RunTracker(
        tracking["experiment"], tracking["uri"], run_name=f"tune-{name}", tensorboard=False
    )
    tags = {"study": name, "storage": search["storage"] or "memory", "backend": search["backend"]}
    parent.set_tags({f"twin.tune.{key}": value for key, value in tags.items()})
    parent.log_params({f"search.{k}": json.dumps(v) for k, v in search.items() if v is not None})
    status = "FAILED"
    try:
        yield parent
        status = "FINISHED"
    finally:
        parent.end(status)


def run_trial(
    config: dict[str, Any],
    search: dict[str, Any],
    values: dict[str, Any],
    number: int,
    parent: str,
    report: Callable[[int, float, str], None],
    stops: type[BaseException] | tuple[type[BaseException], ...] = (),
) -> tuple[float, Any]:
    """Train trial ``number`` as a child run of ``parent``: its last metric and result.
    ``report(epoch, value, run_id)`` may raise one of ``stops`` to prune it (run KILLED)."""
    run_config = with_params(config, values)
    run_config["tracking"]["run_name"] = f"{search['study']}-trial-{number}"
    tags = {"mlflow.parentRunId": parent, "twin.tune.trial": number}
    seen: dict[str, Any] = {"run_id": None, "last": None, "epoch": 0}

    def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
        if search["metric"] in metrics:
            seen.update(last=float(metrics[search["metric"]]), epoch=epoch)
            report(epoch, seen["last"], seen["run_id"])

    try:
        result = _trainer.train(
            run_config, tags=tags, on_run=lambda run: seen.update(run_id=run), on_epoch=on_epoch
        )
    except stops:
        if seen["run_id"]:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri(run_config["tracking"]["uri"]))
            why = f"pruned at epoch {seen['epoch']} ({search['metric']}={seen['last']:.4g})"
            kill_trial(client, seen["run_id"], why)
        raise
    if seen["last"] is None:
        raise ConfigError(
            f"search.metric: {search['metric']!r} was never logged by the trainer",
            hint="val_* metrics need a validation split (data.val_fraction > 0)",
        )
    return seen["last"], result


def tune(config: dict[str, Any], search: dict[str, Any]) -> TuneResult:
    """Run ``search['trials']`` new trials of ``config`` and return the best one."""
    if search["backend"] == "ray":
        from twinengine.ai.tune_ray import tune_ray

        return tune_ray(config, search)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=search["study"],
        storage=search["storage"],
        sampler=_sampler(search),
        pruner=_pruner(search, config["trainer"]["epochs"]),
        direction=search["direction"],
        load_if_exists=True,
    )

    def objective(trial: Any) -> float:
        def report(epoch: int, value: float, run_id: str) -> None:
            trial.set_user_attr("mlflow_run_id", run_id)
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        values = _suggest(trial, search["space"])
        number, stops = trial.number, optuna.TrialPruned
        value, result = run_trial(config, search, values, number, parent.run_id, report, stops)
        trial.set_user_attr("epochs", result.epochs_done)
        trial.set_user_attr("values", values)
        return value

    with parent_run(config, search) as parent:
        study.optimize(objective, n_trials=search["trials"], n_jobs=search["workers"])
        trials = [
            Trial(t.number, t.user_attrs.get("values") or dict(t.params), t.value,
                  t.user_attrs.get("mlflow_run_id"), t.state.name.lower())
            for t in study.trials
        ]  # fmt: skip
        return finish(parent, config, search, trials)


def finish(
    parent: RunTracker, config: dict[str, Any], search: dict[str, Any], trials: list[Trial]
) -> TuneResult:
    """Record the best complete trial on the parent run, register its model if asked."""
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    if not done:
        raise ConfigError(
            f"search: no trial of study {search['study']} completed",
            hint="see the trials' MLflow runs; a pruner or NaN losses may stop them all",
        )
    best = (min if search["direction"] == "minimize" else max)(done, key=lambda t: t.value or 0.0)
    params, value, run_id = best.values, float(best.value or 0), best.run_id
    best_config = {k: v for k, v in with_params(config, params).items() if k[0] != "_"}
    best_config["tracking"]["run_name"] = None
    parent.log_params({f"best.{k}": json.dumps(v) for k, v in params.items()})
    parent.log_metrics({f"best_{search['metric']}": value}, 0)
    parent.set_tags({"twin.tune.best_run_id": run_id or "", "twin.tune.best_trial": best.number})
    out = Path(tempfile.mkdtemp(prefix="twin-tune-")) / "best_config.yaml"
    out.write_text(yaml.safe_dump(best_config, sort_keys=False))
    parent.log_artifact(out)
    registered = None
    if search["register"] and run_id:
        from twinengine.ai.registry import ModelRegistry

        about = f"best trial {best.number} of study {search['study']}"
        registry = ModelRegistry(tracking_uri=parent.uri)
        registered = registry.register(run_id, str(search["register"]), description=about)
    pruned = sum(t.state == "pruned" for t in trials)
    result = (params, value, run_id, copy.deepcopy(best_config), len(trials), pruned, registered)
    return TuneResult(search["study"], parent.run_id, parent.uri, *result)


def kill_trial(client: Any, run_id: str, why: str) -> None:
    """Mark a trial's MLflow run as stopped early (pruned): tag and KILLED status."""
    client.set_tag(run_id, "twin.tune.pruned", why)
    client.set_terminated(run_id, status="KILLED")

"""The Ray Tune backend of ``twin tune`` (``search.backend: ray``): the same trials, run by Ray.

The ``search`` section means what it means for Optuna: its ranges become ``ray.tune``
domains (``uniform``/``loguniform``/``quniform``, ``randint``/``lograndint``/``qrandint``,
``choice``; the grid sampler becomes one ``grid_search`` over the grid's points), ``tpe``
runs as Ray's ``OptunaSearch``, ``random`` as Ray's own random search, and the pruners
become Ray schedulers (``asha`` → ASHA, ``hyperband`` → asynchronous Hyperband brackets,
``median`` → the median stopping rule). Ray is started locally for one search
(``workers`` CPUs, no dashboard) and shut down after, unless this process has already
initialised Ray; every trial runs
:func:`twinengine.ai.tune.run_trial` in a Ray worker, reporting each epoch with
``ray.tune.report``, as an MLflow child run of the same parent run as with Optuna, and the
search ends in the same :class:`~twinengine.ai.tune.TuneResult` (shared CLI output and
registration of the best model). A trial that fails fails the search with its own error.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import math
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twinengine.ai.tracking import _environ
from twinengine.ai.tune import (
    Trial,
    TuneResult,
    _grid,
    _sampler,
    _token,
    finish,
    kill_trial,
    parent_run,
    run_trial,
)
from twinengine.core.errors import ConfigError, TwinError

GRID_KEY = "grid_point"


class RayTuneError(TwinError):
    """Ray could not start, or a trial raised an error that is not a TwinError itself."""


def trial_namer() -> Callable[[Any], str]:
    """Names Ray's trials ``trial-0``, ``trial-1``… as it creates them (its ids are random).

    A function: Ray deep-copies its settings per trial, which keeps a function as it is.
    """
    made = [0]

    def name(trial: Any) -> str:
        made[0] += 1
        return f"trial-{made[0] - 1}"

    return name


def _not_installed() -> ConfigError:
    return ConfigError(
        "search.backend: ray needs Ray Tune, which is not installed",
        hint='install the ray extra (pip install "twinengine[ray]"), or use backend: optuna',
    )


def check_ray(search: dict[str, Any]) -> None:
    """``backend: ray`` needs Ray Tune installed and no Optuna ``storage``."""
    if importlib.util.find_spec("ray") is None:
        raise _not_installed()
    if search["storage"] is not None:
        raise ConfigError(
            "search.storage: an Optuna RDB storage is used by backend optuna only",
            hint="leave storage out with backend ray, or use backend optuna to share a study",
        )


def _domain(tune: Any, spec: dict[str, Any]) -> Any:
    """The ``ray.tune`` domain of one checked range (see ``tune._check_param``)."""
    if spec["type"] == "categorical":
        return tune.choice([_token(c) for c in spec["choices"]])
    low, high, step, log = spec["low"], spec["high"], spec["step"], spec["log"]
    if step is not None and not math.isclose(low / step, round(low / step), abs_tol=1e-9):
        return tune.choice(_grid(spec))  # Ray quantizes to multiples of step, Optuna from low
    if spec["type"] == "int":
        if log:
            return tune.lograndint(low, high + 1)
        if step is not None and int(step) > 1:
            return tune.qrandint(low, high, int(step))
        return tune.randint(low, high + 1)
    if log:
        return tune.loguniform(low, high)
    return tune.quniform(low, high, step) if step is not None else tune.uniform(low, high)


def ray_space(
    tune: Any, search: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """Ray's ``param_space`` and, for the grid sampler, the grid points it indexes.

    Like Optuna's grid sampler, a grid larger than ``trials`` is sampled (with ``seed``).
    """
    space = search["space"]
    if search["sampler"] != "grid":
        return {key: _domain(tune, spec) for key, spec in space.items()}, None
    combos = itertools.product(*(_grid(spec) for spec in space.values()))
    points = [dict(zip(space, combo, strict=True)) for combo in combos]
    if len(points) > search["trials"]:
        random.Random(search["seed"]).shuffle(points)
        points = points[: search["trials"]]
    return {GRID_KEY: tune.grid_search(list(range(len(points))))}, points


def trial_values(
    params: dict[str, Any], space: dict[str, Any], points: list[dict[str, Any]] | None
) -> dict[str, Any]:
    """The config values of a Ray trial's ``params`` (tokens decoded, numpy types gone)."""
    raw = points[params[GRID_KEY]] if points is not None else params
    values: dict[str, Any] = {}
    for key, spec in space.items():
        value = raw[key]
        if spec["type"] == "categorical":
            value = spec["choices"][[_token(c) for c in spec["choices"]].index(value)]
        else:
            value = int(value) if spec["type"] == "int" else float(value)
        values[key] = value
    return values


def _max_epochs(config: dict[str, Any], search: dict[str, Any]) -> int:
    """The most epochs a trial can run (``trainer.epochs`` may be searched too)."""
    spec = search["space"].get("trainer.epochs")
    if spec is None:
        return int(config["trainer"]["epochs"])
    if spec["type"] == "categorical":
        return max([1] + [c for c in spec["choices"] if isinstance(c, int)])
    return int(spec["high"])


def _searcher(search: dict[str, Any]) -> Any:
    if search["sampler"] == "tpe":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        optuna.logging.set_verbosity(optuna.logging.WARNING)

        return OptunaSearch(sampler=_sampler(search))
    from ray.tune.search import BasicVariantGenerator

    return BasicVariantGenerator(random_state=search["seed"])


def _scheduler(search: dict[str, Any], max_t: int) -> Any:
    from ray.tune import schedulers

    name, common = search["pruner"], {"time_attr": "epoch", "max_t": max_t, "grace_period": 1}
    if name == "asha":
        return schedulers.ASHAScheduler(**common)
    if name == "hyperband":  # as many brackets as Optuna's HyperbandPruner (factor 3)
        brackets = int(math.log(max_t) / math.log(3)) + 1 if max_t > 1 else 1
        return schedulers.AsyncHyperBandScheduler(**common, reduction_factor=3, brackets=brackets)
    if name == "median":
        return schedulers.MedianStoppingRule(
            time_attr="epoch", grace_period=1, min_samples_required=2
        )
    return None  # first in, first out: no early stopping


def _trial(
    params: dict[str, Any],
    config: dict[str, Any],
    search: dict[str, Any],
    parent: str,
    points: list[dict[str, Any]] | None,
    driver: dict[str, Any],
) -> None:
    """One trial, in a Ray worker: train and report every epoch's metric to Ray Tune.

    The worker takes the driver's working folder (relative paths in the config) and its
    ``TWIN_HOME`` and MLflow tracking URI (the parent run's), whoever started Ray.
    """
    from ray import tune

    os.chdir(driver["cwd"])
    os.environ.update(driver["env"])
    number = int(tune.get_context().get_trial_name().rsplit("-", 1)[-1])
    values = trial_values(params, search["space"], points)
    last = int(values.get("trainer.epochs", config["trainer"]["epochs"]))
    held: dict[str, Any] = {}

    def report(epoch: int, value: float, run_id: str) -> None:
        row = {search["metric"]: value, "epoch": epoch, "trial": number, "mlflow_run_id": run_id}
        if epoch < last:
            tune.report(row)  # a scheduler stops the trial by raising SystemExit here
        else:  # after the run ended: stopping at max_t must not cut the model's upload
            held.update(row)

    run_trial(config, search, values, number, parent, report, SystemExit)
    if held:
        tune.report(held)


def _import_tune() -> tuple[Any, Any]:
    try:
        import ray
        from ray import tune
    except ImportError as exc:
        raise _not_installed() from exc
    return ray, tune


def tune_ray(config: dict[str, Any], search: dict[str, Any]) -> TuneResult:
    """Run ``search['trials']`` trials of ``config`` with Ray Tune; the best one."""
    ray, tune = _import_tune()
    from twinengine.core import get_settings

    home = Path(get_settings().home)
    param_space, points = ray_space(tune, search)
    with parent_run(config, search) as parent:
        started = not ray.is_initialized()
        if started:  # a local cluster for this search; else the one already there
            _start(ray, search["workers"])
        try:
            grid = _fit(tune, config, search, parent, param_space, points, home)
        except tune.TuneError as exc:
            raise RayTuneError(f"search: Ray Tune failed ({exc})") from exc
        finally:
            if started:
                ray.shutdown()
        trials = _trials(grid, search, points, parent)
        return finish(parent, config, search, trials)


def _start(ray: Any, cpus: int) -> None:
    try:
        ray.init(
            num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
        )
    except Exception as exc:  # ports, /tmp/ray, memory: say so without Ray's traceback
        raise RayTuneError(
            f"search.backend: ray could not start a local Ray instance ({exc})",
            hint="see /tmp/ray/session_latest/logs, or use backend: optuna",
        ) from exc


def _fit(
    tune: Any,
    config: dict[str, Any],
    search: dict[str, Any],
    parent: Any,
    param_space: dict[str, Any],
    points: list[dict[str, Any]] | None,
    home: Path,
) -> Any:
    env = {"TWIN_HOME": str(home), "MLFLOW_TRACKING_URI": parent.uri}
    driver = {"cwd": os.getcwd(), "env": env}
    trainable = tune.with_parameters(
        _trial, config=config, search=search, parent=parent.run_id, points=points, driver=driver
    )
    tune_config = tune.TuneConfig(
        metric=search["metric"],
        mode="min" if search["direction"] == "minimize" else "max",
        search_alg=_searcher(search) if points is None else None,
        scheduler=_scheduler(search, _max_epochs(config, search)),
        num_samples=search["trials"] if points is None else 1,
        max_concurrent_trials=search["workers"],
        reuse_actors=True,
        trial_name_creator=trial_namer(),
    )
    run_config = tune.RunConfig(
        name=f"{search['study']}-{parent.run_id[:8]}",
        storage_path=str(home / "ray"),
        verbose=0,
        failure_config=tune.FailureConfig(fail_fast=True),
    )
    parent.set_tags({"twin.tune.ray_dir": str(home / "ray" / run_config.name)})
    quiet = logging.getLogger("ray.tune")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a trial's error is raised by _trials, once
    try:  # Ray's new console output ignores verbose=0: the legacy one is silent
        with _environ({"RAY_AIR_NEW_OUTPUT": "0"}):
            tuner = tune.Tuner(
                trainable, param_space=param_space, tune_config=tune_config, run_config=run_config
            )
            return tuner.fit()
    finally:
        quiet.setLevel(level)


def _trials(
    grid: Any, search: dict[str, Any], points: list[dict[str, Any]] | None, parent: Any
) -> list[Trial]:
    """Every Ray trial as a :class:`Trial`; stopped trials' runs end ``KILLED``.

    A trial whose MLflow run did not finish was stopped by the scheduler (pruned) or, after
    another trial failed, by Ray; its worker may have gone before it could end the run,
    which is done here. The first trial error is raised then, as the trial's own error
    where that is a TwinError.
    """
    client, trials, errors = parent.client, [], []
    for result in grid:
        metrics = result.metrics or {}
        run_id, number = metrics.get("mlflow_run_id"), metrics.get("trial", -1)
        if result.error is not None:
            errors.append(result)
            continue
        if "trial" not in metrics:  # never started: another trial failed first
            continue
        params = trial_values(result.config, search["space"], points)
        run = client.get_run(run_id) if run_id else None
        state = "complete" if run is not None and run.info.status == "FINISHED" else "pruned"
        if run is not None and state == "pruned" and run.info.status != "KILLED":
            epoch = metrics.get("epoch")
            kill_trial(client, run_id, f"stopped by Ray Tune at epoch {epoch}")
        trials.append(Trial(number, params, metrics.get(search["metric"]), run_id, state))
    experiment = client.get_run(parent.run_id).info.experiment_id
    where = f"tags.mlflow.parentRunId = '{parent.run_id}' and attributes.status = 'RUNNING'"
    for run in client.search_runs([experiment], filter_string=where):
        kill_trial(client, run.info.run_id, "stopped by Ray Tune")
    if errors:
        raise _trial_error(errors[0], search, points)
    return sorted(trials, key=lambda t: t.number)


def _trial_error(
    result: Any, search: dict[str, Any], points: list[dict[str, Any]] | None
) -> TwinError:
    """A failed trial's error: its own TwinError, else a :class:`RayTuneError` saying where."""
    cause = getattr(result.error, "cause", None) or result.error
    if isinstance(cause, TwinError):
        return cause
    values = trial_values(result.config, search["space"], points)
    return RayTuneError(
        f"search: the trial with {values} failed: {type(cause).__name__}: {cause}",
        hint=f"its traceback is in {result.path}/error.txt",
    )

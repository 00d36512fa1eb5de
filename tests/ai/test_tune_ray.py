"""twin tune with backend ray: Ray Tune trials as MLflow child runs, schedulers, errors."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("mlflow")
pytest.importorskip("optuna")

from tests.ai.test_tune import write_example
from twinengine.ai.tune import load_search, tune
from twinengine.core.errors import ConfigError

RAY = ["search.backend=ray"]


@pytest.fixture
def ray_tune() -> Any:
    return pytest.importorskip("ray.tune")


@pytest.fixture(scope="module")
def running_ray() -> Iterator[Any]:
    """One local Ray for the tests below: a search uses it and leaves it running."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def children(result: Any) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    experiment = client.get_run(result.parent_run_id).info.experiment_id
    where = f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    return client.search_runs([experiment], filter_string=where)


def last_metric(run_id: str, uri: str, key: str) -> float:
    from mlflow import MlflowClient

    history = MlflowClient(uri).get_metric_history(run_id, key)
    return max(history, key=lambda m: m.step).value


def test_asha_search_child_runs_best_and_register(ray_tune: Any, tmp_path: Path) -> None:
    """Its own Ray, started and shut down: 4 trials under ASHA, best = best child run."""
    import ray
    from mlflow import MlflowClient

    extra = [*RAY, "search.trials=4", "search.pruner=asha", "search.register=ray-line"]
    config, search = load_search(write_example(tmp_path), extra)
    running = ray.is_initialized()
    result = tune(config, search)
    assert ray.is_initialized() == running  # a Ray it started itself is shut down again
    assert result.trials == 4
    assert set(result.best_params) == set(search["space"])
    assert result.best_config["optimizer"]["lr"] == result.best_params["optimizer.lr"]
    runs = children(result)
    assert sorted(r.info.run_name for r in runs) == [f"tune-tests-tune-trial-{n}" for n in range(4)]
    assert {r.data.tags["twin.tune.trial"] for r in runs} == {"0", "1", "2", "3"}
    finished = [r for r in runs if r.info.status == "FINISHED"]
    killed = [r for r in runs if r.info.status == "KILLED"]
    assert len(finished) + len(killed) == 4  # no run left RUNNING or FAILED
    assert result.pruned == len(killed) >= 1  # ASHA stopped the worse trials after epoch 1
    assert all("twin.tune.pruned" in r.data.tags for r in killed)
    assert result.best_run_id in {r.info.run_id for r in finished}
    values = {
        r.info.run_id: last_metric(r.info.run_id, result.tracking_uri, "val_loss") for r in finished
    }
    assert result.best_value == pytest.approx(values[result.best_run_id])
    assert result.best_value == pytest.approx(min(values.values()))
    parent = MlflowClient(result.tracking_uri).get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["twin.tune.backend"] == "ray"
    assert parent.data.tags["twin.tune.best_run_id"] == result.best_run_id
    assert parent.data.metrics["best_val_loss"] == pytest.approx(result.best_value)
    assert result.registered is not None


def test_grid_with_two_workers(running_ray: Any, tmp_path: Path) -> None:
    """A grid of 2 x 2 points, 3 of them sampled, 2 trials at a time on a running Ray."""
    extra = [
        *RAY,
        "search.sampler=grid",
        "search.trials=3",
        "search.workers=2",
        "search.space.optimizer.lr={type: float, low: 0.01, high: 0.02, step: 0.01}",
        "search.space.trainer.batch_size={type: categorical, choices: [16, 32]}",
        "search.space.model.hidden={type: categorical, choices: [[8]]}",
    ]
    result = tune(*load_search(write_example(tmp_path), extra))
    assert running_ray.is_initialized()
    assert result.trials == 3 and result.pruned == 0
    runs = children(result)
    points = {(r.data.params["optimizer.lr"], r.data.params["trainer.batch_size"]) for r in runs}
    assert len(points) == 3  # three different grid points
    assert result.best_params["optimizer.lr"] in (0.01, 0.02)
    assert result.best_params["trainer.batch_size"] in (16, 32)
    assert all(r.info.status == "FINISHED" for r in runs)


def test_tpe_median_and_hyperband_run(running_ray: Any, tmp_path: Path) -> None:
    """TPE through Ray's OptunaSearch with the median rule; Hyperband brackets parse."""
    path = write_example(tmp_path)
    extra = [*RAY, "search.sampler=tpe", "search.pruner=median", "search.trials=3"]
    result = tune(*load_search(path, [*extra, "trainer.epochs=3"]))
    assert result.trials == 3
    assert 1e-4 <= result.best_params["optimizer.lr"] <= 1e-1
    assert result.best_params["model.hidden"] in ([8], [16, 16])  # decoded, not JSON text
    from twinengine.ai.tune_ray import _scheduler

    _, search = load_search(path, [*RAY, "search.pruner=hyperband"])
    assert type(_scheduler(search, 9)).__name__ == "AsyncHyperBandScheduler"


def test_trial_errors_surface(running_ray: Any, tmp_path: Path) -> None:
    """A trial's TwinError is raised as it is; any other error names the trial's values."""
    from mlflow import MlflowClient

    from twinengine.ai.tracking import tracking_uri
    from twinengine.ai.tune_ray import RayTuneError

    path = write_example(tmp_path)
    bad = [
        *RAY,
        "search.trials=2",
        "search.space.model.hidden={type: categorical, choices: [[-3]]}",
    ]
    with pytest.raises(ConfigError, match=r"model\.name mlp: cannot build it"):
        tune(*load_search(path, bad))
    broken = [*RAY, "search.trials=1", "model={_target_: torch.load, f: /no/such/model.pt}"]
    with pytest.raises(
        RayTuneError, match=r"the trial with \{'optimizer\.lr'.*FileNotFoundError"
    ) as info:
        tune(*load_search(path, broken))
    assert "error.txt" in (info.value.hint or "")
    client = MlflowClient(tracking_uri())
    parents = client.search_runs(
        [client.get_experiment_by_name("tune-tests").experiment_id],
        filter_string="tags.`twin.tune.backend` = 'ray'",
    )
    assert {p.info.status for p in parents} == {"FAILED"}


def test_space_translation(ray_tune: Any) -> None:
    """Every range becomes a Ray domain whose samples stay in the range (decoded)."""
    from twinengine.ai.config import check_config
    from twinengine.ai.tune import check_search
    from twinengine.ai.tune_ray import ray_space, trial_values

    config = check_config({"model": "mlp", "data": {"path": "x.csv"}, "metrics": ["mae"]})
    space = {
        "optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "optimizer.momentum": {"type": "float", "low": 0.1, "high": 0.3, "step": 0.05},
        "optimizer.eps": {"type": "float", "low": 0.0, "high": 1.0},
        "trainer.batch_size": {"type": "int", "low": 16, "high": 64, "step": 16},
        "trainer.epochs": {"type": "int", "low": 1, "high": 3},
        "trainer.seed": {"type": "int", "low": 1, "high": 100, "log": True},
        "trainer.log_every_n_steps": {"type": "int", "low": 3, "high": 9, "step": 2},
        "model.hidden": {"type": "categorical", "choices": [[8], [16, 16]]},
    }
    search = check_search({"space": space, "backend": "ray", "seed": 0}, config)
    param_space, points = ray_space(ray_tune, search)
    assert points is None
    for _ in range(40):
        params = {key: domain.sample() for key, domain in param_space.items()}
        values = trial_values(params, search["space"], None)
        assert 1e-4 <= values["optimizer.lr"] <= 1e-1
        assert any(
            abs(values["optimizer.momentum"] - v) < 1e-9 for v in (0.1, 0.15, 0.2, 0.25, 0.3)
        )
        assert 0.0 <= values["optimizer.eps"] <= 1.0
        assert values["trainer.batch_size"] in (16, 32, 48, 64)
        assert values["trainer.epochs"] in (1, 2, 3) and type(values["trainer.epochs"]) is int
        assert 1 <= values["trainer.seed"] <= 100
        assert values["trainer.log_every_n_steps"] in (3, 5, 7, 9)  # steps from low, as Optuna
        assert values["model.hidden"] in ([8], [16, 16])


def test_backend_ray_rejects_optuna_storage(ray_tune: Any, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"search\.storage: .*backend optuna only"):
        load_search(write_example(tmp_path), [*RAY, "search.storage=sqlite:///x.db"])


def test_unknown_backend_and_ray_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_example(tmp_path)
    with pytest.raises(ConfigError, match=r"search\.backend: 'dask'; accepted: optuna, ray"):
        load_search(path, ["search.backend=dask"])
    config, search = load_search(path)  # checked as backend optuna
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError, match=r"search\.backend: ray needs Ray Tune") as info:
        load_search(path, RAY)
    assert "twinengine[ray]" in (info.value.hint or "")
    with pytest.raises(ConfigError, match=r"search\.backend: ray needs Ray Tune"):
        tune(config, {**search, "backend": "ray"})  # switched after the check: still clear

"""twin tune: search section checks, Optuna trials as MLflow child runs, shared storage."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("mlflow")
pytest.importorskip("optuna")

import twinengine.core
from twinengine.ai.tune import load_search, tune
from twinengine.core.errors import ConfigError

CONFIG = """
model: {name: mlp, hidden: [8]}
data: {path: data.csv, features: [x], target: y, val_fraction: 0.25, standardize: true}
loss: mse
optimizer: {name: adam, lr: 0.01}
metrics: [mae]
trainer: {epochs: 2, batch_size: 16, seed: 0, onnx: false}
tracking: {experiment: tune-tests, tensorboard: false, provenance: false}
search:
  space:
    optimizer.lr: {type: float, low: 1.0e-4, high: 1.0e-1, log: true}
    model.hidden: {type: categorical, choices: [[8], [16, 16]]}
    trainer.batch_size: {type: int, low: 16, high: 64, step: 16}
  trials: 3
  sampler: random
  seed: 1
  metric: val_loss
  direction: minimize
"""


def write_example(folder: Path, rows: int = 120) -> Path:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, rows)
    y = 2 * x + 1 + rng.normal(0, 0.05, rows)
    lines = ["x,y"] + [f"{a:.5f},{b:.5f}" for a, b in zip(x, y, strict=True)]
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    (folder / "tune.yaml").write_text(CONFIG)
    return folder / "tune.yaml"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("tune-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWIN_HOME", str(folder))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        twinengine.core.reset()
        yield folder
        twinengine.core.reset()


def test_tiny_search_child_runs_and_best(home: Path) -> None:
    from mlflow import MlflowClient

    path = write_example(home)
    config, search = load_search(path)
    started = time.monotonic()
    result = tune(config, search)
    assert time.monotonic() - started < 30
    assert result.trials == 3
    space = search["space"]
    assert 1e-4 <= result.best_params["optimizer.lr"] <= 1e-1
    assert result.best_params["model.hidden"] in ([8], [16, 16])
    assert result.best_params["trainer.batch_size"] in (16, 32, 48, 64)
    assert set(result.best_params) == set(space)
    assert result.best_config["optimizer"]["lr"] == result.best_params["optimizer.lr"]
    assert "search" not in result.best_config
    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    experiment = parent.info.experiment_id
    children = client.search_runs(
        [experiment], filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(children) == 3
    assert result.best_run_id in {c.info.run_id for c in children}
    assert f"best_{search['metric']}" in parent.data.metrics
    assert "best.optimizer.lr" in parent.data.params
    artifacts = [a.path for a in client.list_artifacts(result.parent_run_id)]
    assert "best_config.yaml" in artifacts
    loaded = yaml.safe_load(result.best_yaml)
    assert loaded["model"]["hidden"] == result.best_params["model.hidden"]


def test_shared_storage_resumes_study(home: Path) -> None:
    path = write_example(home)
    storage = f"sqlite:///{home / 'optuna.db'}"
    extra = [f"search.storage={storage}", "search.study=shared", "search.trials=2"]
    first = tune(*load_search(path, extra))
    assert first.trials == 2
    second = tune(*load_search(path, [*extra, "search.seed=2"]))
    assert second.trials == 4
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    assert len(study.trials) == 4


def test_pruners_and_samplers_parse(tmp_path: Path) -> None:
    path = write_example(tmp_path)
    for pruner in ("hyperband", "asha", "median", "none"):
        _, search = load_search(path, [f"search.pruner={pruner}"])
        assert search["pruner"] == pruner
    _, search = load_search(
        path,
        [
            "search.sampler=grid",
            "search.space.optimizer.lr={type: float, low: 0.01, high: 0.03, step: 0.01}",
        ],
    )
    assert search["sampler"] == "grid"


@pytest.mark.parametrize(
    ("override", "names"),
    [
        (
            "search.space.optimizer.lr={type: uniform, low: 1, high: 2}",
            "search.space.optimizer.lr.type",
        ),
        (
            "search.space.model.hidden={type: categorical, choices: []}",
            "search.space.model.hidden.choices",
        ),
        (
            "search.space.trainer.batch_size={type: int, low: 16, high: x}",
            "search.space.trainer.batch_size.high",
        ),
        ("search.space.nope.x={type: int, low: 1, high: 2}", "search.space.nope.x"),
        ("search.sampler=bayes", "search.sampler"),
        ("search.pruner=fast", "search.pruner"),
        ("search.metric=val_r2", "search.metric"),
        ("search.colour=red", "search.colour"),
    ],
)
def test_bad_search_names_the_key(tmp_path: Path, override: str, names: str) -> None:
    path = write_example(tmp_path)
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load_search(path, [override])


def test_grid_rejects_continuous_float(tmp_path: Path) -> None:
    path = write_example(tmp_path)
    with pytest.raises(ConfigError, match=r"search\.space\.optimizer\.lr.*accepted|grid"):
        load_search(path, ["search.sampler=grid"])


def test_cli_tune(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from twinengine.cli.tune import tune as cli_tune

    path = write_example(home)
    out = home / "best.yaml"
    cli_tune(path, ["search.trials=1", "search.study=cli"], output=out)
    printed = capsys.readouterr().out
    assert "best run" in printed
    assert yaml.safe_load(out.read_text())["model"]["name"] == "mlp"


def test_pruner_and_workers_run(home: Path) -> None:
    """A median pruner over 4 epochs with 2 worker threads: every trial ends, some may prune."""
    import optuna

    path = write_example(home)
    extra = [
        "search.pruner=median",
        "search.trials=4",
        "search.workers=2",
        "search.study=pruned",
        "trainer.epochs=4",
        f"search.storage=sqlite:///{home / 'pruned.db'}",
    ]
    result = tune(*load_search(path, extra))
    assert result.trials == 4
    study = optuna.load_study(study_name="pruned", storage=f"sqlite:///{home / 'pruned.db'}")
    states = {t.state for t in study.trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert result.best_run_id


def test_register_best(home: Path) -> None:
    """search.register registers the best trial's model with the model registry."""
    pytest.importorskip("twinengine.ai.registry")
    path = write_example(home)
    extra = ["search.trials=2", "search.study=reg", "search.register=tuned-line"]
    result = tune(*load_search(path, extra))
    assert result.registered is not None


def test_the_example_tuning_config_runs(home: Path) -> None:
    """examples/train-mlp/tune.yaml, as the README tour runs it (fewer trials here)."""
    from twinengine.ai.tune import load_search
    from twinengine.ai.tune import tune as run_search

    example = Path(__file__).resolve().parents[2] / "examples" / "train-mlp" / "tune.yaml"
    config, search = load_search(example, ["search.trials=2", "trainer.epochs=2"])
    result = run_search(config, search)
    assert result.trials == 2 and result.best_run_id
    assert set(result.best_params) == {"optimizer.lr", "model.hidden"}

"""twin train: config loading and overrides, data, training, MLflow tracking, resume, guard."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mlflow")

import twinengine.core
from twinengine.ai import (
    apply_overrides,
    load_config,
    load_data,
    parse_override,
    train,
)
from twinengine.core.errors import ConfigError, NotFoundError

CONFIG = """
model: {name: mlp, hidden: [16]}
data: {path: data.csv, features: [x], target: y, val_fraction: 0.2, standardize: true}
loss: mse
optimizer: {name: adam, lr: 0.02}
metrics: [mae, rmse]
trainer: {epochs: 4, batch_size: 16, seed: 0, checkpoint_every: 2}
tracking: {experiment: tests}
"""


def write_example(folder: Path, rows: int = 160) -> Path:
    """A CSV of y = 2x + 1 + noise and the config above beside it."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, rows)
    y = 2 * x + 1 + rng.normal(0, 0.05, rows)
    lines = ["x,y"] + [f"{a:.5f},{b:.5f}" for a, b in zip(x, y, strict=True)]
    (folder / "data.csv").write_text("\n".join(lines) + "\n")
    (folder / "config.yaml").write_text(CONFIG)
    return folder / "config.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of 4 epochs, then resumed to 6, in a home of its own (shared by tests)."""
    home = tmp_path_factory.mktemp("ai-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWIN_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        twinengine.core.reset()
        path = write_example(home)
        first = train(load_config(path))
        resumed = train(load_config(path, ["trainer.epochs=6"]), resume=first.run_id)
        twinengine.core.reset()
    return {"home": home, "config": path, "first": first, "resumed": resumed}


@pytest.fixture(scope="module")
def shared_uri(trained: dict[str, Any]) -> str:
    """The SQLite tracking URI of the module's home (no second database migration)."""
    return trained["first"].tracking_uri


def quick(config: Path, uri: str, *overrides: str) -> list[str]:
    return load_config(
        config,
        [
            f"tracking.uri={uri}",
            "tracking.provenance=false",
            "tracking.tensorboard=false",
            "trainer.onnx=false",
            *overrides,
        ],
    )


def test_loss_decreases(trained: dict[str, Any]) -> None:
    history = trained["first"].history
    assert [row["epoch"] for row in history] == [1, 2, 3, 4]
    assert history[-1]["val_loss"] < history[0]["val_loss"] / 2
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_mlflow_run_has_params_metrics_and_artifacts(trained: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    home = trained["home"]
    assert trained["first"].tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=trained["first"].tracking_uri)
    run = client.get_run(trained["first"].run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "mlp"
    assert run.data.params["trainer.epochs"] == "4"
    assert run.data.params["optimizer.lr"] == "0.02"
    assert {"train_loss", "val_loss", "val_mae", "val_rmse", "train_loss_step"} <= set(
        run.data.metrics
    )
    system = {"epoch_seconds", "samples_per_second", "cpu_percent", "memory_rss_mb"}
    assert {f"system/{name}" for name in system} <= set(run.data.metrics)
    assert run.data.metrics["system/memory_rss_mb"] > 10
    history = client.get_metric_history(run.info.run_id, "system/samples_per_second")
    assert len(history) == 6 and all(m.value > 0 for m in history)  # resumed to 6
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "model", "checkpoints", "tensorboard"} <= artifacts
    model = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert "model/model.pt" in model
    assert "model/model.onnx" in model
    assert str(home / "mlartifacts") in run.info.artifact_uri
    events = client.list_artifacts(run.info.run_id, "tensorboard")
    assert any("tfevents" in a.path for a in events)


def test_resume_continues_the_epoch_count(trained: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    first, resumed = trained["first"], trained["resumed"]
    assert resumed.run_id == first.run_id
    assert resumed.start_epoch == 5
    assert [row["epoch"] for row in resumed.history] == [5, 6]
    assert resumed.history[-1]["val_loss"] < first.history[0]["val_loss"]
    client = MlflowClient(tracking_uri=first.tracking_uri)
    steps = [m.step for m in client.get_metric_history(first.run_id, "val_loss")]
    assert sorted(steps) == [1, 2, 3, 4, 5, 6]
    assert client.get_run(first.run_id).data.tags["twin.resumed_from_epoch"] == "4"


def test_resume_of_an_unknown_run_names_it(trained: dict[str, Any], shared_uri: str) -> None:
    with pytest.raises(NotFoundError, match="--resume nosuchrun"):
        train(quick(trained["config"], shared_uri), resume="nosuchrun")


def test_guard_stops_an_exploding_run(trained: dict[str, Any], shared_uri: str) -> None:
    from mlflow import MlflowClient

    config = quick(
        trained["config"],
        shared_uri,
        "optimizer={name: sgd, lr: 1000}",
        "trainer.epochs=20",
        "trainer.guard.max_loss=100",
    )
    result = train(config)
    assert result.stopped is not None
    assert result.epochs_done < 20
    run = MlflowClient(tracking_uri=shared_uri).get_run(result.run_id)
    assert run.data.tags["twin.guard"] == "stopped"
    assert run.data.metrics["guard_stopped"] == 1.0


def test_guard_patience_stops_a_plateau(trained: dict[str, Any], shared_uri: str) -> None:
    config = quick(
        trained["config"],
        shared_uri,
        "optimizer={name: sgd, lr: 0.0}",
        "trainer.epochs=20",
        "trainer.patience=2",
        "trainer.guard.window=1",
    )
    result = train(config)
    assert "trainer.patience=2" in (result.stopped or "")
    assert result.epochs_done == 3


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("{name: lstm, hidden: 8}", 5),
        ("{name: gru, hidden: 8}", 5),
        ("{name: cnn1d, channels: [4]}", 5),
        ("{name: cnn1d, channels: [4]}", None),
        ("{name: encoder_decoder, hidden: 8}", 5),
        ("{name: encoder_decoder, hidden: 8, cell: lstm}", None),
        ("{name: gan, latent: 2, hidden: [8]}", None),
        ("{_target_: torch.nn.Linear}", None),
    ],
)
def test_other_models_train(
    trained: dict[str, Any], shared_uri: str, model: str, window: int | None
) -> None:
    result = train(
        quick(
            trained["config"],
            shared_uri,
            f"model={model}",
            f"data.window={window or 'null'}",
            "trainer.epochs=1",
        )
    )
    assert result.epochs_done == 1
    assert np.isfinite(result.history[0]["val_loss"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.name=mpl",
            "model.name: 'mpl' is not a built-in model; built-ins: cnn1d, encoder_decoder, gan",
        ),
        ("data.path=missing.csv", "data.path: no such file"),
        ("model={_target_: nosuch.module.Net}", "model._target_: cannot import nosuch.module.Net"),
        ("model={_target_: torch.nn.NoSuchNet}", "model._target_: torch.nn has no attribute"),
        ("loss=hinge", "loss.name: 'hinge' is not a built-in loss; built-ins: bce"),
        ("optimizer.name=lbfgsx", "optimizer.name: 'lbfgsx' is not a built-in optimizer"),
        ("metrics=[mae, f1]", "metrics: 'f1' is not a built-in metric"),
        ("data.features=[z]", "data.features: 'z' is not in the data file; it has: x, y"),
        ("data.val_fraction=1.5", "data.val_fraction: 1.5 must be a number in [0, 1)"),
        ("trainer.epochs=0", "trainer.epochs: 0 is not a positive integer"),
        ("trainer.epoch=3", "trainer.epoch: not a known key; accepted: batch_size"),
        ("model.hidden=[16, -1]", "model.name mlp: cannot build it with"),
    ],
)
def test_config_errors_name_the_key(trained: dict[str, Any], override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        train(load_config(trained["config"], [override, "tracking.provenance=false"]))


def test_unknown_section_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("model: mlp\ndata: {path: d.csv, features: x, target: y}\nmodle: {}\n")
    with pytest.raises(ConfigError, match="modle: not a config section; sections: data"):
        load_config(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.yaml")


def test_override_parsing() -> None:
    assert parse_override("trainer.epochs=3") == ("trainer.epochs", 3)
    assert parse_override("model.hidden=[32, 16]") == ("model.hidden", [32, 16])
    assert parse_override("optimizer.lr=1e-3") == ("optimizer.lr", 1e-3)
    assert parse_override("tracking.experiment=a=b") == ("tracking.experiment", "a=b")
    assert parse_override("data.standardize=false") == ("data.standardize", False)
    for bad in ("epochs", "=3", "trainer..epochs=3"):
        with pytest.raises(ConfigError, match="KEY=VALUE"):
            parse_override(bad)
    config = apply_overrides(
        {"loss": "mse", "model": {"name": "mlp"}},
        ["loss.reduction=sum", "model.hidden=[8]", "new.key=1"],
    )
    assert config == {
        "loss": {"name": "mse", "reduction": "sum"},
        "model": {"name": "mlp", "hidden": [8]},
        "new": {"key": 1},
    }
    with pytest.raises(ConfigError, match=re.escape("trainer.epochs is 3, not a mapping")):
        apply_overrides({"trainer": {"epochs": 3}}, ["trainer.epochs.x=1"])


def test_npz_data_and_wrong_shapes(tmp_path: Path) -> None:
    x = np.arange(40, dtype=float).reshape(20, 2)
    np.savez(tmp_path / "d.npz", x=x, y=x.sum(axis=1), short=np.ones(7))
    data = load_data(
        {"path": "d.npz", "features": "x", "target": "y", "val_fraction": 0.25}, tmp_path
    )
    assert data.x_train.shape == (15, 2)
    assert data.x_val.shape == (5, 2)
    assert data.out_features == 1
    with pytest.raises(ConfigError, match="7 samples but"):
        load_data({"path": "d.npz", "features": "x", "target": "short"}, tmp_path)
    with pytest.raises(ConfigError, match=re.escape("data.format: '.bin' is not a known format")):
        (tmp_path / "d.bin").write_bytes(b"")
        load_data({"path": "d.bin", "features": "x", "target": "y"}, tmp_path)
    with pytest.raises(ConfigError, match=re.escape("data.window: 50 must be")):
        load_data({"path": "d.npz", "features": "x", "target": "y", "window": 50}, tmp_path)


def test_cli_train_reports_errors_without_traceback(trained: dict[str, Any]) -> None:
    import typer
    from typer.testing import CliRunner

    from twinengine.cli.ai import train as train_command

    app = typer.Typer()
    app.command()(train_command)
    result = CliRunner().invoke(app, [str(trained["config"]), "model.name=mpl"])
    assert result.exit_code == 1
    assert "model.name: 'mpl' is not a built-in model" in result.output
    assert "Traceback" not in result.output


def _line_arrays(rows: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, rows)
    return x, 2 * x + 1


@pytest.mark.parametrize("fmt", ["netcdf", "hdf5", "zarr"])
def test_scientific_formats_train_and_predict(fmt: str, tmp_path: Path, shared_uri: str) -> None:
    """NetCDF (xarray), HDF5 (h5py) and Zarr (xarray) data: read, trained on, and
    predicted over by `twin models predict`."""
    from twinengine.ai.serving.batch import predict_file

    x, y = _line_arrays()
    if fmt == "hdf5":
        h5py = pytest.importorskip("h5py")
        path = tmp_path / "gauge.h5"
        with h5py.File(path, "w") as h5:
            h5["obs/x"] = x
            h5["obs/y"] = y
        features, target = ["obs/x"], "obs/y"
    else:
        xr = pytest.importorskip("xarray")
        ds = xr.Dataset({"x": ("time", x), "y": ("time", y)})
        if fmt == "zarr":
            pytest.importorskip("zarr")
            path = tmp_path / "gauge.zarr"
            ds.to_zarr(path)
        else:
            path = tmp_path / "gauge.nc"
            ds.to_netcdf(path)
        features, target = ["x"], "y"
    data = load_data({"path": str(path), "features": features, "target": target}, tmp_path)
    assert data.info["format"] == fmt and data.info["samples"] == 60
    assert np.allclose(data.x_train.ravel() * 2 + 1, data.y_train.ravel(), atol=1e-5)
    config = write_example(tmp_path)
    quick_config = quick(
        config,
        shared_uri,
        f"data={{path: {path}, features: {features}, target: {target}}}",
        "trainer.epochs=2",
        "trainer.onnx=true",
    )
    result = train(quick_config)
    assert result.onnx_path is not None
    out = tmp_path / "pred.npy"
    summary = predict_file(str(result.onnx_path), path, out, features=features)
    assert summary["rows"] == 60 and np.load(out).shape == (60, 1)


def test_encoder_decoder_forecasts_several_steps(tmp_path: Path, shared_uri: str) -> None:
    """horizon 2 over a two-column target (the next two values): output width 2; a
    horizon that does not divide the target width is refused naming the key."""
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.normal(0, 0.1, 120))
    rows = ["x,y1,y2"] + [f"{t[i]:.5f},{t[i + 1]:.5f},{t[i + 2]:.5f}" for i in range(117)]
    (tmp_path / "series.csv").write_text("\n".join(rows) + "\n")
    config = write_example(tmp_path)
    data = "data={path: series.csv, features: [x], target: [y1, y2], window: 6}"
    model = "model={name: encoder_decoder, hidden: 16, horizon: 2}"
    result = train(quick(config, shared_uri, data, model, "trainer.epochs=3"))
    assert result.epochs_done == 3 and np.isfinite(result.history[-1]["val_loss"])
    with pytest.raises(ConfigError, match=r"model\.horizon: 3 must be a positive integer dividing"):
        train(quick(config, shared_uri, data, "model={name: encoder_decoder, horizon: 3}"))


def test_gan_learns_the_mode_samples_a_spread_and_exports(tmp_path: Path, shared_uri: str) -> None:
    import torch

    from twinengine.ai.generative import GAN
    from twinengine.ai.serving.bundle import load_bundle

    config = write_example(tmp_path, rows=400)
    result = train(
        quick(
            config,
            shared_uri,
            "model={name: gan, latent: 4, hidden: [32, 32], lr: 0.002}",
            "trainer.epochs=15",
            "trainer.onnx=true",
        )
    )
    losses = [row["val_loss"] for row in result.history]
    assert losses[-1] < losses[0] and losses[-1] < 0.2, losses
    model = GAN(1, 1, latent=4, hidden=[32, 32])
    model.load_state_dict(torch.load(result.model_path, weights_only=True))
    x = torch.zeros(5, 1)
    draws = model.sample(x, samples=20)
    assert draws.shape == (20, 5, 1) and float(draws.std()) > 0  # z matters
    bundle = load_bundle(result.onnx_path.parent)
    assert bundle.predict([[[0.5]]])[0].shape == (1, 1)
    with pytest.raises(ConfigError, match=r"model\.latent"):
        GAN(1, 1, latent=0)


def test_gan_refuses_several_processes(tmp_path: Path) -> None:
    from twinengine.ai.distributed import launch

    config = write_example(tmp_path)
    with pytest.raises(ConfigError, match="'gan' trains with one process"):
        launch(config, ["model={name: gan}"], None, 2)
    # every multi-process path checks it, not only launch
    from twinengine.ai.distributed import slurm_script

    with pytest.raises(ConfigError, match="'gan' trains with one process"):
        slurm_script(config, ["model={name: gan}"], nodes=2, nproc=1)

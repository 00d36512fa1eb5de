"""Developers' own pieces: a Dataset class as data._target_, and a training script run
by twin train with tracking, the guard and a registrable model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mlflow")

from twinengine.ai import load_config, load_data, train
from twinengine.core.errors import ConfigError

SCRIPT = """
import torch


def main(run):
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 64).reshape(-1, 1)
    y = 3 * x - 1
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=run.options["lr"])
    for epoch in range(1, run.config["trainer"]["epochs"] + 1):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if run.log(epoch, train_loss=loss.item(), val_loss=loss.item()):
            break
    run.save_model(model, x[:1])
"""


def test_dataset_class_as_data(tmp_path: Path) -> None:
    data = load_data(
        {"_target_": "tests.ai.custom_data.Line", "n": 50, "slope": 3.0, "val_fraction": 0.2},
        tmp_path,
    )
    assert data.x_train.shape == (40, 1) and data.info["format"] == "dataset"
    assert np.allclose(data.y_train, 3 * data.x_train + 1, atol=1e-5)
    with pytest.raises(ConfigError, match=r"cannot read its items \(the sensor archive"):
        load_data({"_target_": "tests.ai.custom_data.Broken"}, tmp_path)
    with pytest.raises(ConfigError, match=r"data\.window: only for data files"):
        load_data({"_target_": "tests.ai.custom_data.Line", "window": 3}, tmp_path)


def test_dataset_class_trains(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "c.yaml").write_text(
        "model: {name: mlp, hidden: [8]}\n"
        "data: {_target_: tests.ai.custom_data.Line, n: 80}\n"
        "trainer: {epochs: 3, batch_size: 16}\n"
        f"tracking: {{uri: '{uri}', tensorboard: false, provenance: false}}\n"
    )
    result = train(load_config(tmp_path / "c.yaml"))
    assert result.epochs_done == 3


def test_training_script_is_tracked_guarded_and_registrable(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from typer.testing import CliRunner

    from twinengine.ai.registry import ModelRegistry
    from twinengine.cli.main import app

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (tmp_path / "train.py").write_text(SCRIPT)
    (tmp_path / "c.yaml").write_text(
        "script: {path: train.py, options: {lr: 0.3}}\n"
        "trainer: {epochs: 40, patience: 3, guard: {window: 1}}\n"
        f"tracking: {{uri: '{uri}', tensorboard: false, provenance: false}}\n"
    )
    cli = CliRunner()
    done = cli.invoke(app, ["train", str(tmp_path / "c.yaml"), "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["epochs"] == 40 and result["loss"] < 0.01
    client = MlflowClient(uri)
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["script.options.lr"] == "0.3"
    assert len(client.get_metric_history(result["run_id"], "val_loss")) == 40
    version = ModelRegistry(tracking_uri=uri, provenance=False).register(result["run_id"], "s")
    assert version == 1
    # the guard stops a script whose loss stalls (lr 0: no progress), exit code 3
    stalled = cli.invoke(
        app, ["train", str(tmp_path / "c.yaml"), "--json", "script.options.lr=0.0"]
    )
    assert stalled.exit_code == 3
    assert json.loads(stalled.stdout)["epochs"] < 40
    # errors name the problem
    (tmp_path / "bad.yaml").write_text("script: {path: nope.py}\n")
    missing = cli.invoke(app, ["train", str(tmp_path / "bad.yaml")])
    assert missing.exit_code == 1 and "script.path: no such file" in missing.output
    (tmp_path / "bad.yaml").write_text("script: {path: train.py, entry: run_it}\n")
    no_entry = cli.invoke(app, ["train", str(tmp_path / "bad.yaml")])
    assert "has no function 'run_it'" in no_entry.output
    # train() builds models from model/data sections: a script config says where it runs
    with pytest.raises(ConfigError, match="a training script runs through twin train"):
        train(load_config(tmp_path / "c.yaml"))
    with pytest.raises(ConfigError, match=r"script\.options: must be a mapping"):
        (tmp_path / "bad.yaml").write_text("script: {path: train.py, options: 3}\n")
        load_config(tmp_path / "bad.yaml")

"""The packaged AI CWL tools in a real workflow run by `twin run`: train → register →
promote (deploy) → predict, and serve for a few seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("mlflow")
pytest.importorskip("onnxruntime")

from .test_train import write_example

WORKFLOW = """cwlVersion: v1.2
class: Workflow
inputs:
  config: File
  data: File
  rows: File
  tracking_uri: string
steps:
  train:
    run: {tools}/train.cwl
    in: {{config: config, data: data, tracking_uri: tracking_uri,
         overrides: {{default: ["trainer.epochs=25", "tracking.tensorboard=false"]}}}}
    out: [run_id, val_loss, model]
  register:
    run: {tools}/register.cwl
    in: {{run_id: train/run_id, name: {{default: line}}, tracking_uri: tracking_uri}}
    out: [name, version, model]
  deploy:
    run: {tools}/promote.cwl
    in: {{name: register/name, version: register/version, tracking_uri: tracking_uri}}
    out: [model]
  predict:
    run: {tools}/predict.cwl
    in: {{model: deploy/model, rows: rows, tracking_uri: tracking_uri}}
    out: [predictions, version]
outputs:
  predictions: {{type: File, outputSource: predict/predictions}}
  deployed: {{type: string, outputSource: deploy/model}}
  version: {{type: "int?", outputSource: predict/version}}
  val_loss: {{type: float, outputSource: train/val_loss}}
  onnx: {{type: File, outputSource: train/model}}
"""


def _env(home: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # where `twin` is installed
    env = {**os.environ, "TWIN_HOME": str(home), "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def test_train_register_deploy_predict_as_a_workflow(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    config = write_example(tmp_path)
    tools = tmp_path / "tools"
    env = _env(home)
    twin = str(Path(sys.executable).parent / "twin")
    copied = subprocess.run([twin, "models", "tools", str(tools)], env=env, capture_output=True)
    assert copied.returncode == 0, copied.stderr
    (tmp_path / "wf.cwl").write_text(WORKFLOW.format(tools=tools))
    (tmp_path / "rows.csv").write_text("x\n-0.5\n0.0\n0.5\n")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    job = {
        "config": {"class": "File", "path": str(config)},
        "data": {"class": "File", "path": str(tmp_path / "data.csv")},
        "rows": {"class": "File", "path": str(tmp_path / "rows.csv")},
        "tracking_uri": uri,
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    out = tmp_path / "out"
    done = subprocess.run(
        [twin, "run", "--outdir", str(out), str(tmp_path / "wf.cwl"), str(tmp_path / "job.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["deployed"] == "line@production" and result["version"] == 1
    assert result["val_loss"] < 0.5
    assert Path(result["onnx"]["path"]).name == "model.onnx"
    predicted = np.loadtxt(result["predictions"]["path"], delimiter=",", skiprows=1)
    assert np.allclose(predicted, [0.0, 1.0, 2.0], atol=0.3)
    from twinengine.ai.registry import ModelRegistry

    shown = ModelRegistry(tracking_uri=uri, provenance=False).show("line")
    assert shown["aliases"] == {"production": 1}


def test_tools_validate_and_are_listed() -> None:
    from twinengine.ai.cwltools import TOOLS, tool_path
    from twinengine.workflows import load_document

    for name in TOOLS:
        load_document(str(tool_path(name)))
        yaml.safe_load(tool_path(name).read_text())  # the native loader and the composer
    with pytest.raises(Exception, match="no AI tool 'fit'"):
        tool_path("fit")


def test_cli_train_json_export_and_guard_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import twinengine.core
    from twinengine.cli.main import app
    from twinengine.events.queue import EventQueue
    from twinengine.notify import NotificationCenter

    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    twinengine.core.reset()
    config = write_example(tmp_path)
    quiet = ["tracking.tensorboard=false", "trainer.epochs=2"]
    cli = CliRunner()
    done = cli.invoke(
        app, ["train", str(config), *quiet, "--json", "--export-model", str(tmp_path / "m")]
    )
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["epochs"] == 2 and result["stopped"] is None and result["loss"] > 0
    assert {Path(p).name for p in result["exported"]} == {
        "model.onnx",
        "model.pt",
        "model_meta.json",
        "standardize.json",
    }
    assert (tmp_path / "m" / "model.onnx").is_file()
    # the folder serves without its ONNX file too: model.pt is rebuilt from model_meta.json
    from twinengine.ai.serving.bundle import load_bundle

    (tmp_path / "m" / "model.onnx").unlink()
    assert load_bundle(tmp_path / "m").path.name == "model.pt"
    exploding = [
        "optimizer={name: sgd, lr: 1000}",
        "trainer.epochs=20",
        "trainer.guard.max_loss=100",
    ]
    stopped = cli.invoke(app, ["train", str(config), *quiet[:1], *exploding, "--json"])
    assert stopped.exit_code == 3
    reason = json.loads(stopped.stdout)["stopped"]
    assert "guard" in reason or "loss" in reason
    found, _ = EventQueue().events(["default"], source="ai")
    assert [(e["kind"], e["key"]) for e in found] == [
        ("guard", json.loads(stopped.stdout)["run_id"])
    ]
    notes = NotificationCenter().inbox("admin", ["default"])
    assert any(n["kind"] == "guard" for n in notes)
    twinengine.core.reset()


def test_steps_find_twin_without_an_activated_environment(tmp_path: Path) -> None:
    """`twin run` started by its full path: a step calling `twin` still finds it."""
    tool = tmp_path / "version.cwl"
    tool.write_text(
        "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [twin, version]\n"
        "inputs: []\nstdout: v.txt\noutputs: {v: stdout}\n"
    )
    env = {**os.environ, "PATH": "/usr/bin:/bin", "TWIN_HOME": str(tmp_path / "home")}
    twin = str(Path(sys.executable).parent / "twin")
    done = subprocess.run(
        [twin, "run", "--outdir", str(tmp_path / "o"), str(tool)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)["v"]["path"]
    assert Path(out).read_text().startswith("twinengine ")

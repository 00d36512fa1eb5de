"""Model registry: register, promote, rollback, history, resolve, export, errors, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("mlflow")
pytest.importorskip("onnx")

import twinengine.core
from twinengine.ai import load_config, train
from twinengine.core.errors import InvalidInputError, NotFoundError, StateError

from .test_train import write_example


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two quick training runs in a home of their own, both registered as ``demo``."""
    from twinengine.ai.registry import ModelRegistry

    home = tmp_path_factory.mktemp("registry-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWIN_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        twinengine.core.reset()
        path = write_example(home)
        overrides = ["trainer.epochs=2", "tracking.tensorboard=false", "trainer.checkpoint_every=9"]
        runs = [train(load_config(path, [*overrides, f"trainer.seed={i}"])) for i in (1, 2)]
        registry = ModelRegistry()
        versions = [registry.register(r.run_id, "demo", description="y = 2x + 1") for r in runs]
        yield {"home": home, "runs": runs, "registry": registry, "versions": versions, "mp": mp}
        twinengine.core.reset()


def test_register_show_and_list(env: Any) -> None:
    registry, runs = env["registry"], env["runs"]
    assert env["versions"] == [1, 2]
    shown = registry.show("demo")
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    assert shown["versions"][0]["run_id"] == runs[0].run_id
    assert shown["versions"][0]["created"]
    listed = {row["name"]: row for row in registry.list()}
    assert listed["demo"]["latest"] == 2 and listed["demo"]["versions"] == 2


def test_promote_rollback_history_resolve_and_export(env: Any, tmp_path: Path) -> None:
    registry = env["registry"]
    registry.promote("demo", 1)
    assert registry.show("demo")["aliases"] == {"production": 1}
    registry.promote("demo", 2)
    assert registry.show("demo")["aliases"] == {"previous": 1, "production": 2}
    registry.promote("demo", 1, alias="staging")
    assert registry.resolve("demo@production") == registry.resolve("demo/2")
    assert registry.resolve("demo").is_file()
    registry.rollback("demo")
    shown = registry.show("demo")
    assert shown["aliases"] == {"previous": 2, "production": 1, "staging": 1}
    assert registry.resolve("demo@production") == registry.resolve("demo/1")
    assert registry.resolve("demo@production").name == "model.onnx"
    history = shown["promotions"]
    assert [(h["action"], h["alias"], h["from"], h["to"]) for h in history] == [
        ("promote", "production", None, 1),
        ("promote", "production", 1, 2),
        ("promote", "staging", None, 1),
        ("rollback", "production", 2, 1),
    ]
    assert all(h["who"] and h["when"] for h in history)
    tag = registry.client.get_registered_model("demo").tags["twin.promotions"]
    assert json.loads(tag) == history
    from twinengine.provenance import ProvStore

    names = [doc["name"] for doc in ProvStore().documents()]
    assert names.count("model-promote") == 3 and names.count("model-rollback") == 1
    files = {p.name for p in registry.export("demo@staging", tmp_path / "out")}
    assert {"model.onnx", "model.pt"} <= files
    assert (tmp_path / "out" / "model.onnx").stat().st_size > 0


def test_errors_name_the_problem(env: Any) -> None:
    registry = env["registry"]
    with pytest.raises(NotFoundError, match="no registered model 'nope'"):
        registry.show("nope")
    with pytest.raises(NotFoundError, match="no alias 'canary'"):
        registry.resolve("demo@canary")
    with pytest.raises(NotFoundError, match="no version 9"):
        registry.promote("demo", 9)
    with pytest.raises(InvalidInputError, match="alias 'previous'"):
        registry.promote("demo", 1, alias="previous")
    with pytest.raises(NotFoundError, match="no MLflow run"):
        registry.register("0" * 32, "demo")
    registry.register(env["runs"][0].run_id, "other")
    with pytest.raises(StateError, match="no 'previous' version"):
        registry.rollback("other")
    with pytest.raises(InvalidInputError, match="model name"):
        registry.register(env["runs"][0].run_id, "bad name")


def test_quality_gate(env: Any) -> None:
    registry = env["registry"]
    with pytest.raises(StateError, match="has not passed quality checks"):
        registry.promote("demo", 2, alias="staging", require_quality=True)
    registry.client.set_model_version_tag("demo", "2", "twin.quality", "passed")
    registry.promote("demo", 2, alias="staging", require_quality=True)
    assert registry.show("demo")["aliases"]["staging"] == 2


def test_cli(env: Any, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twinengine.cli.models import app

    uri = ["--tracking-uri", env["registry"].uri]
    cli = CliRunner()
    run_id = env["runs"][1].run_id
    result = cli.invoke(app, ["register", run_id, "cli-demo", "--tag", "team=ai", *uri])
    assert result.exit_code == 0, result.output
    assert "version 1" in result.output
    assert cli.invoke(app, ["promote", "cli-demo", "1", *uri]).exit_code == 0
    result = cli.invoke(app, ["list", *uri])
    assert "cli-demo" in result.output and "production" in result.output
    result = cli.invoke(app, ["show", "cli-demo", "--json", *uri])
    assert json.loads(result.output)["versions"][0]["tags"] == {"team": "ai"}
    result = cli.invoke(app, ["rollback", "cli-demo", *uri])
    assert result.exit_code == 1 and "no 'previous' version" in result.output
    result = cli.invoke(app, ["export", "cli-demo@production", str(tmp_path / "x"), *uri])
    assert result.exit_code == 0 and (tmp_path / "x" / "model.onnx").is_file()
    result = cli.invoke(app, ["resolve", "cli-demo/1", *uri])
    assert result.output.strip().endswith("model.onnx")


def test_a_model_belongs_to_the_project_that_registered_it(env: Any) -> None:
    from mlflow import MlflowClient

    registry, runs = env["registry"], env["runs"]
    assert registry.project_of("demo") == "default"  # registered without a project
    registry.register(runs[0].run_id, "alpha-line", project="alpha")
    assert registry.show("alpha-line")["project"] == "alpha"
    with pytest.raises(StateError, match="belongs to project 'alpha'"):
        registry.register(runs[1].run_id, "alpha-line", project="beta")
    assert registry.register(runs[1].run_id, "alpha-line", project="alpha") == 2
    MlflowClient(registry.uri).create_registered_model("untagged")  # made by MLflow itself
    assert registry.project_of("untagged") is None
    registry.register(runs[0].run_id, "untagged", project="gamma")  # its first project claims it
    assert registry.project_of("untagged") == "gamma"
    with pytest.raises(NotFoundError) as missing:
        registry.show("nope-nope")
    assert "sqlite" not in str(missing.value) and str(env["home"]) not in str(missing.value)
    assert {r["name"]: r["project"] for r in registry.list()}["alpha-line"] == "alpha"

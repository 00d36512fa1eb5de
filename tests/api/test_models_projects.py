"""Registered models belong to projects, probed through the API by tenants of ``alpha``
and ``beta``: another project's model answers like a missing one (show, promote,
rollback), its name is not available to register into, a viewer changes nothing, models
without a project are the admins', and no answer names the tracking store or a server
path."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("mlflow")

from tests.api.conftest import Live, start_server

MODELS = "/api/v1/models"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        server = start_server(tmp_path_factory.mktemp("models-projects"))
        yield server
        server.stop()


def _run(live: Live, where: Path | None = None) -> str:
    """An MLflow run with a ``model/`` folder, in the server's tracking store."""
    from mlflow import MlflowClient

    home = Path(live.settings.home)
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    root = where or home / "mlartifacts" / "tests"
    name = f"exp-{len(client.search_experiments())}"
    run = client.create_run(client.create_experiment(name, root.as_uri()))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.onnx").write_bytes(b"not really onnx")
        client.log_artifacts(run.info.run_id, tmp, "model")
    return run.info.run_id


@pytest.fixture(scope="module")
def world(live: Live) -> dict[str, Any]:
    tokens = {
        "aowner": live.user_token("aowner", {"alpha": "owner"}),
        "beditor": live.user_token("beditor", {"beta": "editor"}),
        "bview": live.user_token("bview", {"beta": "viewer"}),
    }
    with live.client(tokens["aowner"]) as alice:
        for _ in range(2):
            made = alice.post(f"{MODELS}/alpha-model/versions", json={"run_id": _run(live)})
            assert made.status_code == 200, made.text
        assert alice.post(f"{MODELS}/alpha-model/promote", json={"version": 1}).status_code == 200
        assert alice.post(f"{MODELS}/alpha-model/promote", json={"version": 2}).status_code == 200
    return tokens


def _same(first: httpx.Response, second: httpx.Response, theirs: str, nobody: str) -> None:
    assert first.status_code == second.status_code == 404, (first.text, second.text)
    assert first.text.replace(theirs, "M") == second.text.replace(nobody, "M")
    assert "alpha" not in first.text.replace(theirs, "M")


def test_another_projects_model_answers_like_a_missing_one(live: Live, world: dict) -> None:
    for who in ("beditor", "bview"):
        with live.client(world[who]) as client:
            assert client.get(MODELS).json() == []
            for method, path, body in (
                ("GET", "", None),
                ("POST", "/promote", {"version": 1}),
                ("POST", "/rollback", None),
            ):
                theirs = client.request(method, f"{MODELS}/alpha-model{path}", json=body)
                nobody = client.request(method, f"{MODELS}/nosuch-model{path}", json=body)
                _same(theirs, nobody, "alpha-model", "nosuch-model")
    with live.client(world["aowner"]) as alice:
        shown = alice.get(f"{MODELS}/alpha-model").json()
        assert shown["aliases"]["production"] == 2 and shown["project"] == "alpha"
        assert [p["who"] for p in shown["promotions"]] == ["aowner", "aowner"]


def test_a_name_another_project_holds_is_not_available(live: Live, world: dict) -> None:
    with live.client(world["beditor"]) as bob:
        taken = bob.post(f"{MODELS}/alpha-model/versions", json={"run_id": _run(live)})
        assert taken.status_code == 409, taken.text
        assert "not available" in taken.text and "alpha" not in taken.text.replace(
            "alpha-model", "M"
        )
        foreign = bob.post(
            f"{MODELS}/beta-model/versions", json={"run_id": _run(live), "project": "alpha"}
        )
        assert foreign.status_code == 404  # a project bob is not in: as if there were none
        mine = bob.post(f"{MODELS}/beta-model/versions", json={"run_id": _run(live)})
        assert mine.status_code == 200, mine.text
        for tags in ({"bad\nname": "x"}, {"long": "v" * 10000}, {"k" * 1000: "v"}):
            odd = bob.post(
                f"{MODELS}/beta-model/versions", json={"run_id": _run(live), "tags": tags}
            )
            assert odd.status_code in (200, 400, 422), odd.text  # taken or refused: no 500
        listed = bob.get(MODELS).json()
        assert [(m["name"], m["project"]) for m in listed] == [("beta-model", "beta")]
    with live.client(world["bview"]) as viewer:
        assert viewer.get(f"{MODELS}/beta-model").status_code == 200
        for path, body in (("/promote", {"version": 1}), ("/rollback", None)):
            assert viewer.post(f"{MODELS}/beta-model{path}", json=body).status_code == 403
        again = viewer.post(f"{MODELS}/beta-model/versions", json={"run_id": _run(live)})
        assert again.status_code == 403


def test_models_of_no_project_are_the_admins(live: Live, world: dict) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{Path(live.settings.home) / 'mlflow.db'}")
    client.create_registered_model("legacy-model")
    client.create_model_version("legacy-model", "runs:/" + _run(live) + "/model")
    with live.client(world["beditor"]) as bob:
        theirs = bob.get(f"{MODELS}/legacy-model")
        nobody = bob.get(f"{MODELS}/nosuch-model")
        _same(theirs, nobody, "legacy-model", "nosuch-model")
        promoted = bob.post(f"{MODELS}/legacy-model/promote", json={"version": 1})
        assert promoted.status_code == 404
        into = bob.post(f"{MODELS}/legacy-model/versions", json={"run_id": _run(live)})
        assert into.status_code == 409
    with live.client() as admin:
        listed = {m["name"]: m["project"] for m in admin.get(MODELS).json()}
        assert listed == {"alpha-model": "alpha", "beta-model": "beta", "legacy-model": None}
        assert admin.get(MODELS, params={"project": "beta"}).json()[0]["name"] == "beta-model"
        assert admin.post(f"{MODELS}/legacy-model/promote", json={"version": 1}).status_code == 200


def test_no_answer_names_the_tracking_store_or_a_server_path(live: Live, world: dict) -> None:
    home = str(Path(live.settings.home).resolve())
    elsewhere = Path(tempfile.mkdtemp(prefix="twin-models-", dir="/var/tmp"))
    try:
        with live.client(world["aowner"]) as alice:
            answers = [
                alice.get(f"{MODELS}/nosuch"),
                alice.post(f"{MODELS}/nosuch/promote", json={"version": 1}),
                alice.post(f"{MODELS}/nosuch/rollback"),
                alice.post(f"{MODELS}/alpha-model/promote", json={"version": 99}),
                alice.post(f"{MODELS}/alpha-model/versions", json={"run_id": "0" * 32}),
                alice.post(
                    f"{MODELS}/outside-model/versions", json={"run_id": _run(live, elsewhere)}
                ),
                alice.get(f"{MODELS}/alpha-model"),
                alice.get(f"{MODELS}/outside-model"),
                alice.get(MODELS),
            ]
        for answer in answers:
            for leak in ("sqlite:", home, str(elsewhere), str(Path.cwd()), "mlruns"):
                assert leak not in answer.text, (leak, answer.text)
        sources = [v["source"] for v in answers[6].json()["versions"]]
        assert sources and all(s.startswith("$TWIN_HOME/mlartifacts/") for s in sources), sources
        assert [v["source"] for v in answers[7].json()["versions"]] == [None]
    finally:
        shutil.rmtree(elsewhere, ignore_errors=True)

"""The MLflow child probed through ``/mlflow`` by a project editor (``mlflow_access =
members``): no request chooses where MLflow writes — no client-set ``artifact_location``,
no model version source elsewhere, no upload into a run kept outside the artifact folder
— every file lands under ``$TWIN_HOME/mlartifacts`` (never the server's working folder),
and a run's uploads are bounded."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("mlflow")

from tests.api.conftest import Live, start_server
from twinengine.api.mlflow_rules import RUN_FILES, ArtifactRoots, check_room
from twinengine.core import PayloadTooLargeError

API = "/mlflow/ajax-api/2.0/mlflow"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    server = start_server(
        tmp_path_factory.mktemp("mlflow-tenant"), mlflow_access="members", max_upload_mb=1
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def editor(live: Live) -> Iterator[httpx.Client]:
    token = live.user_token("bedit", {"beta": "editor"})
    with live.client(token) as client:
        client.timeout = httpx.Timeout(120)
        yield client


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


def test_no_request_chooses_where_mlflow_writes(live: Live, editor: httpx.Client) -> None:
    home = Path(live.settings.home).resolve()
    outside = home / "runs" / "someone" / "outputs"
    locations = [
        outside.as_uri(),
        home.as_uri(),
        "file:///",
        "/tmp/elsewhere",
        "s3://bucket/x",
        "mlflow-artifacts://other.example/x",
    ]
    for where in locations:
        for prefix in (API, "/mlflow/api/2.0/mlflow", "/mlflow//ajax-api/2.0//mlflow"):
            made = editor.post(
                f"{prefix}/experiments/create", json={"name": "into", "artifact_location": where}
            )
            assert made.status_code == 400, (prefix, where, made.text)
            assert "where MLflow stores files" in made.json()["error"]["message"]
    nested = editor.post(
        f"{API}/experiments/create", json={"name": "n", "x": [{"artifact_uri": "/"}]}
    )
    assert nested.status_code == 400
    queried = editor.post(
        f"{API}/experiments/create", params={"artifact_location": "file:///"}, json={"name": "q"}
    )
    assert queried.status_code == 400
    assert editor.post(f"{API}/experiments/create", content=b"name=x").status_code == 400
    names = {
        e["name"]
        for e in editor.get(f"{API}/experiments/search", params={"max_results": 100}).json()[
            "experiments"
        ]
    }
    assert not names & {"into", "n", "q"}
    default = editor.get(f"{API}/experiments/get", params={"experiment_id": "0"}).json()
    assert default["experiment"]["artifact_location"].startswith((home / "mlartifacts").as_uri())


def test_uploads_land_in_the_artifact_folder_only(live: Live, editor: httpx.Client) -> None:
    from mlflow import MlflowClient

    home = Path(live.settings.home).resolve()
    roots = ArtifactRoots(home)
    cwd_before = _files(Path.cwd() / "mlartifacts")
    made = editor.post(f"{API}/experiments/create", json={"name": "beta-exp"})
    assert made.status_code == 200, made.text
    run = editor.post(f"{API}/runs/create", json={"experiment_id": made.json()["experiment_id"]})
    run_id = run.json()["run"]["info"]["run_id"]
    put = editor.post(
        f"{API}/upload-artifact", params={"run_uuid": run_id, "path": "evil.csv"}, content=b"a,b\n"
    )
    assert put.status_code == 200, put.text
    landed = [p for p in _files(roots.root) if p.name == "evil.csv"]
    assert len(landed) == 1 and run_id in str(landed[0])
    proxied = editor.put("/mlflow/api/2.0/mlflow-artifacts/artifacts/beta/pl.txt", content=b"x")
    assert proxied.status_code == 200, proxied.text
    assert (roots.proxied / "beta" / "pl.txt").read_bytes() == b"x"
    for bad in ("../x.txt", "beta/../../x.txt", "beta/%2e%2e/x.txt"):
        answer = editor.put(f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{bad}", content=b"x")
        assert answer.status_code in (400, 404), (bad, answer.text)
    # a run whose experiment (made before this check, by MLflow directly) lies elsewhere
    legacy_root = home.parent / "legacy-artifacts"
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    legacy = client.create_run(client.create_experiment("legacy", legacy_root.as_uri()))
    refused = editor.post(
        f"{API}/upload-artifact",
        params={"run_uuid": legacy.info.run_id, "path": "evil.csv"},
        content=b"x",
    )
    assert refused.status_code == 400, refused.text
    assert not legacy_root.exists()
    missing = editor.post(
        f"{API}/upload-artifact", params={"run_uuid": "0" * 32, "path": "a"}, content=b"x"
    )
    assert missing.status_code == 404
    assert _files(Path.cwd() / "mlartifacts") == cwd_before
    assert not (Path.cwd() / "mlruns").exists() or not any((Path.cwd() / "mlruns").iterdir())


def test_a_runs_uploads_are_bounded(live: Live, editor: httpx.Client) -> None:
    made = editor.post(f"{API}/experiments/create", json={"name": "bounded"}).json()
    run = editor.post(f"{API}/runs/create", json={"experiment_id": made["experiment_id"]}).json()
    run_id = run["run"]["info"]["run_id"]
    block = b"x" * (900 * 1024)  # max_upload_mb = 1: 10 MB per run
    codes = []
    for number in range(13):
        answer = editor.put(
            f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{made['experiment_id']}/{run_id}/"
            f"artifacts/f{number}.bin",
            content=block,
        )
        codes.append(answer.status_code)
    assert codes[:11] == [200] * 11 and codes[-1] == 413, codes


def test_a_folder_at_its_file_count_takes_no_more(tmp_path: Path) -> None:
    for number in range(RUN_FILES):
        (tmp_path / f"{number}").touch()
    with pytest.raises(PayloadTooLargeError):
        check_room(tmp_path, 0, 10**9)
    (tmp_path / "0").unlink()
    check_room(tmp_path, 0, 10**9)


def test_model_version_sources_stay_on_this_server(live: Live, editor: httpx.Client) -> None:
    home = Path(live.settings.home).resolve()
    editor.post(f"{API}/registered-models/create", json={"name": "beta-model"})
    for source in (
        "file:///etc",
        "/etc/passwd",
        (home / "runs").as_uri(),
        "s3://bucket/model",
        "mlflow-artifacts://elsewhere.example/model",
        "runs:/abc/../../../etc",
    ):
        answer = editor.post(
            f"{API}/model-versions/create", json={"name": "beta-model", "source": source}
        )
        assert answer.status_code == 400, (source, answer.text)
        assert "source" in answer.json()["error"]["message"]
    versions = editor.get(
        f"{API}/model-versions/search", params={"filter": "name='beta-model'"}
    ).json()
    assert versions.get("model_versions", []) == []

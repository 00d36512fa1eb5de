"""The model registry through the REST API: register, promote, roll back, errors,
scopes, and the promotions recorded in the server's provenance store."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("mlflow")

from tests.ai.test_train import write_example
from tests.api.conftest import start_server


def test_register_promote_rollback_through_the_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twinengine.ai import load_config, train
    from twinengine.provenance import ProvStore

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "home"
    live = start_server(home)
    try:
        config = write_example(tmp_path)
        uri = f"sqlite:///{home / 'mlflow.db'}"
        quick = ["trainer.epochs=2", "tracking.tensorboard=false", "tracking.provenance=false"]
        runs = [train(load_config(config, [*quick, f"tracking.uri={uri}"])).run_id for _ in "ab"]
        reader = live.user_token("reader", {"default": "viewer"}, scopes=("read",))
        with live.client() as api:
            assert api.get("/api/v1/models").json() == []
            for number, run_id in enumerate(runs, 1):
                made = api.post(
                    "/api/v1/models/line/versions", json={"run_id": run_id, "description": "y=2x+1"}
                )
                assert made.status_code == 200, made.text
                assert made.json() == {"name": "line", "version": number, "run_id": run_id}
            first = api.post("/api/v1/models/line/promote", json={"version": 1})
            assert first.status_code == 200 and first.json()["who"] == "admin"
            second = api.post("/api/v1/models/line/promote", json={"version": 2}).json()
            assert (second["from"], second["to"]) == (1, 2)
            back = api.post("/api/v1/models/line/rollback").json()
            assert (back["action"], back["from"], back["to"]) == ("rollback", 2, 1)
            shown = api.get("/api/v1/models/line").json()
            assert shown["aliases"] == {"previous": 2, "production": 1}
            assert [v["version"] for v in shown["versions"]] == [1, 2]
            assert shown["versions"][0]["tags"]["twin.registered_by"] == "admin"
            assert len(shown["promotions"]) == 3
            listed = api.get("/api/v1/models").json()
            assert listed == [
                {
                    "name": "line",
                    "project": "default",  # an admin's model: the default project
                    "description": "y=2x+1",
                    "latest": 2,
                    "versions": 2,
                    "aliases": {"previous": 2, "production": 1},
                }
            ]
            assert api.get("/api/v1/models/nope").status_code == 404
            assert api.post("/api/v1/models/line/promote", json={"version": 9}).status_code == 404
            bad = api.post("/api/v1/models/line/promote", json={"version": 1, "alias": "previous"})
            assert bad.status_code == 422
            gate = api.post(
                "/api/v1/models/line/promote", json={"version": 2, "require_quality": True}
            )
            assert gate.status_code == 409 and "quality" in gate.json()["error"]["message"]
            unknown = api.post("/api/v1/models/line/versions", json={"run_id": "0" * 32})
            assert unknown.status_code == 404
        with live.client(token=reader) as viewer:
            assert viewer.get("/api/v1/models/line").status_code == 200
            assert viewer.post("/api/v1/models/line/rollback").status_code == 403
        names = [d["name"] for d in ProvStore(live.app.state.twin.db).documents()]
        assert names.count("model-promote") == 2 and names.count("model-rollback") == 1
    finally:
        live.stop()

"""The MLflow UI under /mlflow of twin serve: started on demand, behind tokens and the
session cookie, on the same tracking store as twin train."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytest.importorskip("mlflow")

from tests.api.conftest import start_server


def test_mlflow_ui_behind_the_session_cookie(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    home = tmp_path / "home"
    live = start_server(home)
    try:
        client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
        experiment = client.create_experiment("twin-ui-test", str(home / "mlartifacts" / "x"))
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "val_loss", 0.25)
        with httpx.Client(base_url=live.url, timeout=90) as anonymous:
            page = anonymous.get("/mlflow/", headers={"Accept": "text/html"})
            assert page.status_code == 401 and "Sign in" in page.text
            assert (
                anonymous.get("/mlflow/ajax-api/2.0/mlflow/experiments/search").status_code == 401
            )
            assert anonymous.post("/api/v1/session").status_code == 401
            assert anonymous.delete("/api/v1/session").status_code == 401
        with live.client() as admin:
            opened = admin.post("/api/v1/session")
            assert opened.status_code == 200 and opened.json()["path"] == "/mlflow"
            cookie = opened.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie and "path=/mlflow" in cookie
        with live.client() as admin:
            closed = admin.delete("/api/v1/session")
            assert closed.status_code == 200 and "max-age=0" in closed.headers["set-cookie"].lower()
        with httpx.Client(base_url=live.url, timeout=90, cookies=opened.cookies) as browser:
            page = browser.get("/mlflow/")
            assert page.status_code == 200 and "<!doctype html>" in page.text.lower()
            found = browser.get(
                "/mlflow/ajax-api/2.0/mlflow/experiments/search", params={"max_results": 50}
            )
            assert found.status_code == 200, found.text
            assert "twin-ui-test" in {e["name"] for e in found.json()["experiments"]}
            metric = browser.get(
                "/mlflow/ajax-api/2.0/mlflow/metrics/get-history",
                params={"run_id": run.info.run_id, "metric_key": "val_loss"},
            )
            assert metric.json()["metrics"][0]["value"] == 0.25
        reader = live.user_token("reader", {"default": "viewer"}, scopes=("read",))
        with live.client(token=reader) as viewer:  # mlflow_access = admins (the default)
            search = "/mlflow/ajax-api/2.0/mlflow/experiments/search?max_results=5"
            refused = viewer.get(search)
            assert refused.status_code == 403 and "administrators" in refused.text
            assert viewer.get("/api/v1/me").json()["mlflow"] is False
            denied = viewer.post(
                "/mlflow/ajax-api/2.0/mlflow/experiments/create", json={"name": "nope"}
            )
            assert denied.status_code == 403
        with live.client() as admin:
            assert admin.get("/api/v1/me").json()["mlflow"] is True
        ui = live.app.state.twin.extras["mlflow_ui"]
        assert ui.child is not None and ui.child.poll() is None
    finally:
        live.stop()
    assert ui.child is None  # stopped with the server

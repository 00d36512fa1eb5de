"""``twin serve`` on PostgreSQL: the same API path as on the embedded SQLite default."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import ECHO, start_server, wait_run
from tests.core.test_database_postgres import pg_url, server  # noqa: F401 - fixtures

pytestmark = pytest.mark.services


def test_register_run_isolate_and_trace_on_postgres(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    live = start_server(tmp_path / "home", database_url=pg_url)
    try:
        with live.client() as client:
            workflow = client.post(
                "/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())}
            ).json()
            run = client.post(
                "/api/v1/runs", json={"workflow": workflow["id"], "inputs": {"message": "pg"}}
            ).json()
            assert wait_run(client, run["id"])["state"] == "succeeded"
            said = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["output"]
            assert client.get(said["download"]).text == "pg\n"
            graph = client.get(f"/api/v1/runs/{run['id']}/prov", params={"format": "graph"})
            target = f"sha256:{said['sha256']}"
            assert any(n["id"] == target for n in graph.json()["nodes"])
            lineage = client.get("/api/v1/prov/lineage", params={"target": target}).json()
            assert len(lineage["nodes"]) > 1
        outsider = live.user_token("pg-outsider", {"other": "owner"})
        with live.client(token=outsider) as client:
            assert client.get(f"/api/v1/runs/{run['id']}").status_code == 404
            assert client.get("/api/v1/prov/lineage", params={"target": target}).status_code == 404
    finally:
        live.stop()

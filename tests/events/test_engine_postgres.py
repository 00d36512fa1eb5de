"""The event engine on PostgreSQL: webhook events → exactly one run each."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.api.conftest import ECHO, start_server, wait_run
from tests.core.test_database_postgres import pg_url, server  # noqa: F401 - fixtures
from tests.events.test_engine import post_yaml, runs_of, until

pytestmark = pytest.mark.services


def test_webhook_to_runs_on_postgres(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    live = start_server(tmp_path / "home", database_url=pg_url)
    try:
        with live.client() as client:
            client.post("/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())})
            post_yaml(client, "/api/v1/sources", "name: hook\nkind: webhook\n")
            made = post_yaml(
                client,
                "/api/v1/triggers",
                "name: say\nsource: hook\nworkflow: echo\ninputs: {message: $key}\n",
            )
            assert made.status_code == 201, made.text
            events = [{"key": f"k{i}"} for i in range(20)]
            assert client.post("/api/v1/events/hook", json=events).json()["new"] == 20
            assert client.post("/api/v1/events/hook", json=events).json()["new"] == 0
            done = until(lambda: len([d for d in runs_of(client, "say") if d["run_id"]]) == 20)
            assert done
            runs = {d["run_id"] for d in runs_of(client, "say")}
            assert len(runs) == 20
            assert all(wait_run(client, r)["state"] == "succeeded" for r in runs)
    finally:
        live.stop()

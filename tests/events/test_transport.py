"""The event queue backed by NATS JetStream or Redis Streams (services marker)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.api.conftest import ECHO, start_server, wait_run
from tests.events.test_engine import post_yaml, runs_of, until

pytestmark = pytest.mark.services


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.mark.parametrize(("scheme", "port"), [("nats", 4222), ("redis", 6379)])
def test_events_go_through_the_broker_to_one_run_each(
    scheme: str, port: int, tmp_path: Path
) -> None:
    if not reachable(port):
        pytest.skip(f"{scheme} is not running on 127.0.0.1:{port}")
    queue = f"t{os.getpid()}{scheme}"
    url = f"{scheme}://127.0.0.1:{port}" + ("/0" if scheme == "redis" else "") + f"?queue={queue}"
    live = start_server(tmp_path / "home", event_queue=url)
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
            events = [{"key": f"k{i}"} for i in range(10)]
            assert client.post("/api/v1/events/hook", json=events).json()["accepted"] == 10
            client.post("/api/v1/events/hook", json=events)  # repeats: dropped on the way
            until(lambda: len([d for d in runs_of(client, "say") if d["run_id"]]) == 10)
            stored = client.get("/api/v1/events", params={"source": "hook"}).json()
            assert stored["total"] == 10
            runs = {d["run_id"] for d in runs_of(client, "say")}
            assert len(runs) == 10
            assert all(wait_run(client, r)["state"] == "succeeded" for r in runs)
    finally:
        live.stop()

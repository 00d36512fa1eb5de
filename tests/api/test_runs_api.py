"""Runs through the API: inputs, uploads, logs, outputs, SSE, cancel, resume, restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.api.conftest import ECHO, Live, start_server, wait_run
from tests.waiting import until

SLEEPY = b"""cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
inputs:
  seconds: {type: int, inputBinding: {position: 1, valueFrom: "sleep $(self); echo slept"}}
requirements: {InlineJavascriptRequirement: {}}
stdout: out.txt
outputs: {out: {type: stdout}}
"""
FAILING = b"""cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, "echo something broke >&2; exit 3"]
inputs: []
outputs: []
"""


def register(client: httpx.Client, data: bytes, name: str) -> dict:
    answer = client.post("/api/v1/workflows", files={"file": (f"{name}.cwl", data)})
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_inputs_are_checked_before_a_run_is_queued(api: Live) -> None:
    with api.client() as client:
        echo = register(client, ECHO.read_bytes(), "echo")
        cases = {
            "missing": ({}, "missing required input(s): message"),
            "unknown": ({"message": "x", "colour": 1}, "unknown input(s): colour"),
            "type": ({"message": 42}, "input 'message' must be string, got a number"),
        }
        for label, (inputs, words) in cases.items():
            answer = client.post("/api/v1/runs", json={"workflow": echo["id"], "inputs": inputs})
            assert answer.status_code == 400, label
            assert words in answer.json()["error"]["message"], (label, answer.text)
        ghost = client.post("/api/v1/runs", json={"workflow": "nope", "inputs": {}})
        assert ghost.status_code == 404
        wrong = client.post("/api/v1/runs", json={"workflow": echo["id"], "inputs": []})
        assert wrong.status_code == 422
        assert client.get("/api/v1/runs", params={"workflow": echo["id"]}).json()["total"] == 0


def test_uploaded_file_as_input_then_logs_outputs_and_events(api: Live) -> None:
    with api.client() as client:
        wc = client.post(
            "/api/v1/workflows/compose",
            json={
                "name": "count",
                "steps": [{"id": "wc", "run": "template:wc", "in": {"file": {"source": "data"}}}],
                "inputs": [{"id": "data", "type": "File"}],
                "outputs": [{"id": "counts", "source": "wc/output"}],
            },
        ).json()
        upload = client.post("/api/v1/uploads", files={"file": ("../../notes.txt", b"a b\nc\n")})
        assert upload.status_code == 201
        assert upload.json()["name"] == "notes.txt" and upload.json()["size"] == 6
        server_path = client.post(
            "/api/v1/runs",
            json={
                "workflow": wc["id"],
                "inputs": {"data": {"class": "File", "path": "/etc/passwd"}},
            },
        )
        assert server_path.status_code == 400 and "not an upload" in server_path.text
        run = client.post(
            "/api/v1/runs",
            json={
                "workflow": wc["id"],
                "name": "counting",
                "inputs": {"data": {"class": "File", "location": upload.json()["location"]}},
            },
        ).json()
        assert run["state"] == "queued" and run["name"] == "counting"
        events = []
        with client.stream("GET", f"/api/v1/runs/{run['id']}/events") as stream:
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    events.append((kind, json.loads(line[6:])))
        assert events[-1] == ("end", {"id": run["id"], "state": "succeeded"})
        step_states = [e["state"] for k, e in events if k == "step"]
        assert step_states[-1] == "succeeded"
        assert all(
            e["started_at"].endswith("Z") for k, e in events if k == "run" and e["started_at"]
        )
        done = client.get(f"/api/v1/runs/{run['id']}").json()
        assert done["inputs"]["data"]["location"].startswith("upload:")  # as the user gave it
        assert done["steps"][0]["exit_code"] == 0 and done["step_counts"] == {"succeeded": 1}
        counts = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["counts"]
        assert client.get(counts["download"]).text.split()[:3] == ["2", "3", "6"]
        escape = client.get(f"/api/v1/runs/{run['id']}/files/..%2F..%2Ftwin.db")
        assert escape.status_code == 404
        page = client.get("/api/v1/runs", params={"q": "counting"}).json()
        assert [r["id"] for r in page["items"]] == [run["id"]]
        assert page["items"][0]["workflow_name"] == "count"


def test_failed_step_logs_and_resume(api: Live) -> None:
    with api.client() as client:
        broken = register(client, FAILING, "broken")
        run = client.post("/api/v1/runs", json={"workflow": broken["id"]}).json()
        done = wait_run(client, run["id"])
        assert done["state"] == "failed"
        logs = client.get(f"/api/v1/runs/{run['id']}/logs").text
        assert "something broke" in logs
        step = done["steps"][0]["name"]
        follow = client.get(f"/api/v1/runs/{run['id']}/logs", params={"step": step, "follow": True})
        assert follow.text.strip() == "something broke"
        assert client.delete(f"/api/v1/runs/{run['id']}").status_code == 204
        assert client.get(f"/api/v1/runs/{run['id']}").status_code == 404
        far = client.get("/api/v1/runs", params={"offset": 2**63})
        assert far.status_code == 422 and "offset" in far.json()["error"]["message"]
        bad_state = client.get("/api/v1/runs", params={"state": "sleeping"})
        assert bad_state.status_code == 400 and "unknown state" in bad_state.text


def test_cancel_a_running_run_then_resume_it(api: Live) -> None:
    with api.client() as client:
        sleepy = register(client, SLEEPY, "sleepy")
        run = client.post(
            "/api/v1/runs", json={"workflow": sleepy["id"], "inputs": {"seconds": 30}}
        ).json()
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/runs/{run['id']}").json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.delete(f"/api/v1/runs/{run['id']}").status_code == 409
        started = time.monotonic()
        assert client.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 200
        assert wait_run(client, run["id"], 20)["state"] == "cancelled"
        assert time.monotonic() - started < 15
        again = client.post(f"/api/v1/runs/{run['id']}/cancel")
        assert again.status_code == 409
        resumed = client.post(f"/api/v1/runs/{run['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["state"] == "queued"
        client.post(f"/api/v1/runs/{run['id']}/cancel")
        final = wait_run(client, run["id"], 30)
        assert final["state"] == "cancelled" and final["attempt"] >= 1, (
            final["error"],
            final["ended_at"],
            final["started_at"],
        )


def test_queued_runs_survive_a_server_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_server(home, max_runs=1)
    with first.client() as client:
        echo = register(client, ECHO.read_bytes(), "echo")
        first.app.state.twin.dispatcher.stop()  # the server "dies" with runs queued
        ids = [
            client.post(
                "/api/v1/runs", json={"workflow": echo["id"], "inputs": {"message": f"m{i}"}}
            ).json()["id"]
            for i in range(3)
        ]
        queued = client.post(
            "/api/v1/runs", json={"workflow": echo["id"], "inputs": {"message": "never"}}
        ).json()["id"]
        assert client.post(f"/api/v1/runs/{queued}/cancel").json()["state"] == "cancelled"
    first.stop()
    second = start_server(home, max_runs=1)
    try:
        with second.client(token=first.token) as client:
            for run_id in ids:
                assert wait_run(client, run_id)["state"] == "succeeded"
            assert client.get(f"/api/v1/runs/{queued}").json()["state"] == "cancelled"
            metrics = client.get("/metrics").text
            assert 'twin_runs{state="succeeded"} 3.0' in metrics
            assert "twin_http_requests_total" in metrics
    finally:
        second.stop()


NATIVE_SLEEP = b"""cwlVersion: v1.2
class: CommandLineTool
baseCommand: sleep
inputs:
  seconds: {type: int, inputBinding: {position: 1}}
outputs: []
"""


def test_native_runs_execute_in_the_server_and_cancel_by_flag(api: Live) -> None:
    with api.client() as client:
        echo = register(client, ECHO.read_bytes(), "echo")
        run = client.post(
            "/api/v1/runs", json={"workflow": echo["id"], "inputs": {"message": "here"}}
        ).json()
        assert wait_run(client, run["id"])["state"] == "succeeded"
        stored = api.app.state.twin.runs.get(run["id"])
        assert stored["options"]["inprocess"] is True and stored["options"]["loader"] == "native"
        sleepy = register(client, NATIVE_SLEEP, "native-sleep")
        run = client.post(
            "/api/v1/runs", json={"workflow": sleepy["id"], "inputs": {"seconds": 30}}
        ).json()
        deadline = time.monotonic() + 20
        while client.get(f"/api/v1/runs/{run['id']}").json()["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        assert client.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 200
        assert wait_run(client, run["id"], 20)["state"] == "cancelled"
        assert time.monotonic() - started < 10
        assert client.get("/health").json()["status"] == "ok"  # the server was not signalled


def test_a_run_resumed_before_its_last_process_is_reaped_is_not_failed(tmp_path: Path) -> None:
    """The dispatcher reaps a child only after it recorded its end; a run resumed in
    between is queued again and must start, not be marked failed by the late reap."""
    from twinengine.workflows.children import exit_code_of as _exit_code
    from twinengine.workflows.dispatch import RunDispatcher

    live = start_server(tmp_path / "home")
    live.app.state.twin.dispatcher.stop()  # this test ticks its own dispatcher
    dispatcher = RunDispatcher(live.settings, inprocess=False)

    def state(client: httpx.Client, run_id: str) -> dict:
        return client.get(f"/api/v1/runs/{run_id}").json()

    try:
        with live.client() as client:
            sleepy = register(client, SLEEPY, "sleepy")
            run_id = client.post(
                "/api/v1/runs", json={"workflow": sleepy["id"], "inputs": {"seconds": 30}}
            ).json()["id"]
            dispatcher.tick()
            first = dispatcher.children[run_id]
            until(lambda: state(client, run_id)["state"] == "running", 30)
            assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
            until(lambda: state(client, run_id)["state"] == "cancelled", 30)
            until(lambda: _exit_code(first) is not None, 30)  # ended, not reaped yet
            assert client.post(f"/api/v1/runs/{run_id}/resume").json()["state"] == "queued"
            dispatcher.tick()  # reaps the first child, starts the resumed run
            assert state(client, run_id)["state"] in ("queued", "running")
            second = dispatcher.children[run_id]
            assert second.pid != first.pid
            until(lambda: state(client, run_id)["state"] == "running", 30)
            assert client.post(f"/api/v1/runs/{run_id}/cancel").status_code == 200
            until(lambda: _exit_code(second) is not None, 30)
            dispatcher.tick()
            final = state(client, run_id)
            assert final["state"] == "cancelled" and final["attempt"] == 2, final
    finally:
        for child in dispatcher.children.values():
            child.kill()
            child.wait()
        live.stop()

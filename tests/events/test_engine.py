"""The event engine through a live server: sources → durable queue → triggers → runs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ECHO, Live, start_server, wait_run
from tests.events.samples import MINIO_NOTIFICATION
from tests.waiting import until

COUNT = {
    "name": "count",
    "inputs": [{"id": "data", "type": "File"}],
    "steps": [{"id": "wc", "run": "template:wc", "in": {"file": {"source": "data"}}}],
    "outputs": [{"id": "counts", "source": "wc/output"}],
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    server = start_server(tmp_path_factory.mktemp("events"))
    with server.client() as client:
        assert client.post("/api/v1/workflows/compose", json=COUNT).status_code == 201
        echo = client.post("/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())})
        assert echo.status_code == 201
    yield server
    server.stop()


def post_yaml(client: httpx.Client, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text.encode(), headers={"content-type": "application/yaml"})


def runs_of(client: httpx.Client, trigger: str) -> list[dict]:
    items = client.get("/api/v1/events", params={"limit": 500}).json()["items"]
    return [d for e in items for d in e["deliveries"] if d["trigger"] == trigger]


def test_a_file_dropped_in_a_folder_runs_its_workflow_once(live: Live, tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    with live.client() as client:
        made = post_yaml(
            client,
            "/api/v1/sources",
            f"name: incoming\nkind: folder\npath: {incoming}\nmode: poll\n"
            "interval: 0.1\nsettle: 0.1\n",
        )
        assert made.status_code == 201, made.text
        trig = post_yaml(
            client,
            "/api/v1/triggers",
            "name: count-new\nsource: incoming\nfilter: {key: '*.txt'}\n"
            "workflow: count\ninputs: {data: $file}\n",
        )
        assert trig.status_code == 201, trig.text
        (incoming / "a.txt").write_text("one two\nthree\n")
        (incoming / "skip.csv").write_text("x")
        delivery = until(lambda: [d for d in runs_of(client, "count-new") if d["run_id"]])[0]
        run = wait_run(client, delivery["run_id"])
        assert run["state"] == "succeeded" and run["created_by"] == "trigger:count-new"
        counts = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["counts"]
        assert client.get(counts["download"]).text.split()[:3] == ["2", "3", "14"]
        source = until(lambda: client.get("/api/v1/sources/incoming").json()["status"] == "ok")
        assert source
        time.sleep(0.5)  # the folder is scanned again: an unchanged file is no new event
        assert len(runs_of(client, "count-new")) == 1
        events = client.get("/api/v1/events", params={"source": "incoming"}).json()["items"]
        assert {e["key"] for e in events} == {"a.txt", "skip.csv"}
        assert [e["deliveries"] for e in events if e["key"] == "skip.csv"] == [[]]


def test_webhook_events_are_deduplicated_and_mapped(live: Live) -> None:
    with live.client() as client:
        assert (
            post_yaml(client, "/api/v1/sources", "name: hook\nkind: webhook\n").status_code == 201
        )
        trig = post_yaml(
            client,
            "/api/v1/triggers",
            "name: say-key\nsource: hook\nworkflow: echo\ninputs: {message: $data.text}\n",
        )
        assert trig.status_code == 201, trig.text
        body = {"key": "obs-1", "version": "v1", "text": "hello from the hook"}
        first = client.post("/api/v1/events/hook", json=body).json()
        again = client.post("/api/v1/events/hook", json=body).json()
        assert first["new"] == 1 and again["new"] == 0  # the same object and version: a repeat
        delivery = until(lambda: [d for d in runs_of(client, "say-key") if d["run_id"]])[0]
        run = wait_run(client, delivery["run_id"])
        said = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["output"]
        assert client.get(said["download"]).text == "hello from the hook\n"
        assert len(runs_of(client, "say-key")) == 1
        missing = client.post("/api/v1/events/nowhere", json=body)
        assert missing.status_code == 404
        huge = client.post("/api/v1/events/hook", content=b"x" * (1024 * 1024 + 1))
        assert huge.status_code == 413


def test_bad_definitions_name_the_field(live: Live) -> None:
    cases = {
        "name: t0\nsource: bad-hook\nworkflow: echo\n": None,  # the good one, first
        "name: t1\nsource: hook\nworkflow: echo\nconcurrency: lots\n": "concurrency",
        "name: t2\nsource: hook\nworkflow: echo\nfilter: {size: 3}\n": "filter.size",
        "name: t3\nsource: hook\nworkflow: echo\ninputs: {message: $files}\n": "needs a batch",
        "name: t4\nsource: nope\nworkflow: echo\n": "no event source 'nope'",
        "name: t5\nsource: hook\nworkflow: ghost\n": "no workflow 'ghost'",
        "name: t6\nsource: hook\n": "workflow: is required",
        "- just\n- a list\n": "mapping",
    }
    with live.client() as client:
        post_yaml(client, "/api/v1/sources", "name: bad-hook\nkind: webhook\n")
        for text, words in cases.items():
            text = text.replace("source: hook", "source: bad-hook")
            answer = post_yaml(client, "/api/v1/triggers", text)
            if words is None:
                assert answer.status_code == 201, answer.text
                continue
            assert 400 <= answer.status_code < 500, (text, answer.text)
            assert words in answer.json()["error"]["message"], (text, answer.text)
        bad_source = post_yaml(client, "/api/v1/sources", "name: s\nkind: s3\n")
        assert bad_source.status_code == 400 and "bucket" in bad_source.text


def test_failures_retry_then_dead_letter_then_retry_by_hand(live: Live) -> None:
    with live.client() as client:
        post_yaml(client, "/api/v1/sources", "name: hook2\nkind: webhook\n")
        trig = post_yaml(
            client,
            "/api/v1/triggers",
            "name: wrong-type\nsource: hook2\nworkflow: echo\n"
            "inputs: {message: $data.n}\n"
            "retries: {attempts: 2, backoff: 0.1}\n",
        )
        assert trig.status_code == 201, trig.text
        event = client.post("/api/v1/events/hook2", json={"key": "k", "n": 5}).json()
        event_id = event["events"][0]
        dead = until(lambda: client.get("/api/v1/events", params={"state": "dead"}).json()["items"])
        assert dead[0]["id"] == event_id
        delivery = dead[0]["deliveries"][0]
        assert delivery["attempts"] == 2 and "must be string" in delivery["error"]
        assert client.post(f"/api/v1/events/{event_id}/retry").json() == {"retried": 1}
        until(
            lambda: (
                client.get(f"/api/v1/events/{event_id}").json()["deliveries"][0]["state"] == "dead"
            )
        )


def test_approval_then_chained_workflow_on_completion(live: Live) -> None:
    with live.client() as client:
        post_yaml(client, "/api/v1/sources", "name: hook3\nkind: webhook\n")
        post_yaml(
            client,
            "/api/v1/triggers",
            "name: needs-ok\nsource: hook3\nworkflow: echo\napproval: true\n"
            "inputs: {message: $key}\n",
        )
        post_yaml(
            client,
            "/api/v1/triggers",
            "name: then-count\nsource: runs\nfilter: {states: [succeeded], workflow: echo}\n"
            "workflow: count\ninputs: {data: $outputs.output}\n",
        )
        client.post("/api/v1/events/hook3", json={"key": "please run me"})
        waiting = until(lambda: client.get("/api/v1/events/approvals").json()["items"])
        assert waiting[0]["trigger"] == "needs-ok" and waiting[0]["run_id"] is None
        decided = client.post(f"/api/v1/events/approvals/{waiting[0]['id']}").json()
        assert decided["state"] == "pending" and decided["approved_by"] == "admin"
        echoed = until(lambda: [d for d in runs_of(client, "needs-ok") if d["run_id"]])[0]
        assert wait_run(client, echoed["run_id"])["state"] == "succeeded"
        chained = until(lambda: [d for d in runs_of(client, "then-count") if d["run_id"]], 30)
        run = wait_run(client, chained[0]["run_id"])
        assert run["state"] == "succeeded"
        counts = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["counts"]
        assert client.get(counts["download"]).text.split()[:2] == ["1", "3"]  # "please run me"


def test_a_drift_condition_fires_once_the_data_move(live: Live) -> None:
    with live.client() as client:
        post_yaml(client, "/api/v1/sources", "name: gauge\nkind: webhook\n")
        trig = post_yaml(
            client,
            "/api/v1/triggers",
            "name: retrain\nsource: gauge\nworkflow: echo\n"
            "inputs: {message: retrain}\n"
            "condition: {drift: {value: $data.level, test: ks, reference: 40,"
            " window: 20, p_value: 0.01}}\n",
        )
        assert trig.status_code == 201, trig.text
        steady = [{"key": f"s{i}", "level": 1.0 + (i % 7) * 0.01} for i in range(60)]
        moved = [{"key": f"m{i}", "level": 3.0 + (i % 5) * 0.01} for i in range(20)]
        assert client.post("/api/v1/events/gauge", json=steady).json()["new"] == 60
        until(
            lambda: (
                all(d["state"] != "pending" for d in runs_of(client, "retrain"))
                and len(runs_of(client, "retrain")) == 60
            )
        )
        assert not [d for d in runs_of(client, "retrain") if d["run_id"]]
        client.post("/api/v1/events/gauge", json=moved)
        fired = until(lambda: [d for d in runs_of(client, "retrain") if d["run_id"]])
        assert len(fired) == 1


def test_a_source_that_is_down_is_retried_and_shown(live: Live) -> None:
    with live.client() as client:
        made = post_yaml(
            client,
            "/api/v1/sources",
            "name: far-bucket\nkind: s3\nbucket: data\n"
            "endpoint_url: http://127.0.0.1:9\naccess_key: a\nsecret_key: b\n"
            "interval: 0.2\n",
        )
        assert made.status_code == 201, made.text
        down = until(
            lambda: (
                (s := client.get("/api/v1/sources/far-bucket").json())["status"]
                in ("retrying", "down")
                and s
            )
        )
        assert down["error"]
        assert client.get("/health").json()["status"] == "ok"
        # bucket notifications still arrive by POST while the polling is down
        posted = client.post("/api/v1/events/far-bucket", json=MINIO_NOTIFICATION)
        assert posted.status_code == 202, posted.text
        assert posted.json()["accepted"] == 2
        bad = client.post("/api/v1/events/far-bucket", content=b"{not json")
        assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]["message"]
        # a source that watches a peer itself takes no posted events
        assert post_yaml(client, "/api/v1/sources", "name: tick\nkind: cron\nevery: 3600\n")
        refused = client.post("/api/v1/events/tick", json={"key": "x"})
        assert refused.status_code == 400
        assert "cron source; it takes no posted events" in refused.json()["error"]["message"]
        assert client.post("/api/v1/sources/far-bucket/pause").json()["paused"] is True
        assert client.delete("/api/v1/sources/far-bucket").status_code == 204


def test_a_pre_processing_function_feeds_the_run(live: Live) -> None:
    script = "import json,sys; e=json.load(sys.stdin); print(json.dumps({'up': e['key'].upper()}))"
    with live.client() as client:
        deployed = client.post(
            "/api/v1/functions",
            json={"name": "shout", "kind": "command", "target": ["python3", "-c", script]},
        )
        assert deployed.status_code in (200, 201), deployed.text
        post_yaml(client, "/api/v1/sources", "name: hook4\nkind: webhook\n")
        made = post_yaml(
            client,
            "/api/v1/triggers",
            "name: loud\nsource: hook4\nfunction: shout\nworkflow: echo\n"
            "inputs: {message: $result.up}\n",
        )
        assert made.status_code == 201, made.text
        client.post("/api/v1/events/hook4", json={"key": "quiet please"})
        delivery = until(lambda: [d for d in runs_of(client, "loud") if d["run_id"]])[0]
        run = wait_run(client, delivery["run_id"])
        said = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["output"]
        assert client.get(said["download"]).text == "QUIET PLEASE\n"

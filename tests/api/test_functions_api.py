"""Functions through a live ``twin serve``: deploy, synchronous and asynchronous
invocation, calls and logs, project isolation and bad requests."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from twinengine.api.routers import functions as functions_router

from .conftest import Live, start_server

FUNCS = """
def greet(data):
    print("greeting", data.get("name"))
    return {"greeting": "hello " + data.get("name", "world")}

def fail(data):
    raise KeyError("missing")
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment that lets the workers import ``apifuncs``."""
    code = tmp_path_factory.mktemp("code")
    (code / "apifuncs.py").write_text(FUNCS)
    code.chmod(0o755)  # readable by the sandbox user
    return {"PYTHONPATH": str(code)}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> Iterator[Live]:
    # a sandboxed server shows functions only module folders under its input roots
    roots = (Path(env["PYTHONPATH"]),)
    server = start_server(tmp_path_factory.mktemp("serve"), input_roots=roots)
    yield server
    functions_router.shutdown_functions(server.app.state.twin)
    server.stop()


def _deploy(client: httpx.Client, **body: Any) -> dict:
    response = client.post("/api/v1/functions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_deploy_invoke_sync_and_async(live: Live, env: dict[str, str]) -> None:
    with live.client() as client:
        fn = _deploy(client, name="greet", kind="python", target="apifuncs:greet", env=env)
        assert fn["project"] == "default" and fn["env"] == ["PYTHONPATH"]
        assert fn["created_by"] == "admin" and fn["workers"] == 0
        call = client.post("/api/v1/functions/greet/invoke", json={"name": "ada"}).json()
        assert call["state"] == "succeeded" and call["result"] == {"greeting": "hello ada"}
        assert call["logs"] == "greeting ada\n" and call["duration"] >= 0
        assert client.get("/api/v1/functions/greet").json()["workers"] == 1  # warm

        queued = client.post("/api/v1/functions/greet/invoke?async=true", json={"name": "bo"})
        assert queued.status_code == 202, queued.text
        url = queued.json()["url"]
        deadline = time.monotonic() + 20
        while (polled := client.get(url).json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert polled["state"] == "succeeded" and polled["result"]["greeting"] == "hello bo"

        calls = client.get("/api/v1/functions/greet/calls").json()["items"]
        assert [c["id"] for c in calls] == [polled["id"], call["id"]]
        logs = client.get("/api/v1/functions/greet/logs?limit=1").json()["items"]
        assert logs == [
            {k: polled[k] for k in ("id", "state", "created_at", "started_at", "ended_at")}
            | {"error": None, "logs": "greeting bo\n"}
        ]
        names = [f["name"] for f in client.get("/api/v1/functions").json()["items"]]
        assert "greet" in names


def test_failures_are_calls_and_bad_requests_are_4xx(live: Live, env: dict[str, str]) -> None:
    with live.client() as client:
        _deploy(client, name="failing", kind="python", target="apifuncs:fail", env=env)
        response = client.post("/api/v1/functions/failing/invoke", json={})
        assert response.status_code == 200
        assert response.json()["state"] == "failed"
        assert response.json()["error"] == "KeyError: 'missing'"

        cmd = [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"]
        _deploy(client, name="shout", kind="command", target=cmd, timeout=5)
        assert client.post("/api/v1/functions/shout/invoke").json()["result"] == {}
        bad = client.post("/api/v1/functions/shout/invoke", json=[1, 2])
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
        bad = client.post(
            "/api/v1/functions/shout/invoke",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
        )
        assert bad.status_code == 422
        assert client.post("/api/v1/functions/shout/invoke?timeout=0", json={}).status_code == 422
        assert client.post("/api/v1/functions/nope/invoke", json={}).status_code == 404
        assert client.get("/api/v1/functions/calls/nope").status_code == 404

        for body, status in (
            ({"name": "x", "kind": "python", "target": "not a target"}, 400),
            ({"name": "x", "kind": "python", "target": "no_such_module_xyz:f"}, 400),
            ({"name": "x", "kind": "command", "target": "no-such-program-xyz"}, 400),
            ({"name": "x", "kind": "shell", "target": "ls"}, 422),
            ({"name": "x", "kind": "command", "target": "ls", "max_workers": 0}, 422),
            ({"name": "calls", "kind": "command", "target": "ls"}, 400),
        ):
            response = client.post("/api/v1/functions", json=body)
            assert response.status_code == status, (body, response.text)
            assert response.json()["error"]["message"]


def test_other_projects_see_nothing(live: Live) -> None:
    outsider = live.user_token("fn-outsider", {"elsewhere": "owner"})
    viewer = live.user_token("fn-viewer", {"default": "viewer"})
    with live.client() as admin:
        _deploy(admin, name="private", kind="command", target="tr a-z A-Z")
        call = admin.post("/api/v1/functions/private/invoke", json={"a": "b"}).json()
        assert call["result"] == {"A": "B"}
    with live.client(outsider) as client:
        assert client.get("/api/v1/functions").json()["items"] == []
        for method, path in (
            ("GET", "/api/v1/functions/private"),
            ("POST", "/api/v1/functions/private/invoke"),
            ("GET", "/api/v1/functions/private/calls"),
            ("GET", "/api/v1/functions/private/logs"),
            ("DELETE", "/api/v1/functions/private"),
            ("GET", f"/api/v1/functions/calls/{call['id']}"),
        ):
            response = client.request(method, path, json={} if method == "POST" else None)
            assert response.status_code == 404, (method, path, response.text)
        # names are per project: the outsider's "private" is its own, default's untouched
        body = {"name": "private", "kind": "command", "target": "cat", "project": "elsewhere"}
        assert client.post("/api/v1/functions", json=body).status_code == 201
        own = client.post("/api/v1/functions/private/invoke", json={"a": "b"}).json()
        assert own["result"] == {"a": "b"} and own["project"] == "elsewhere"
        assert client.get(f"/api/v1/functions/calls/{call['id']}").status_code == 404
        assert client.delete("/api/v1/functions/private").status_code == 204
    with live.client(viewer) as client:
        assert client.get("/api/v1/functions/private").status_code == 200
        assert client.post("/api/v1/functions/private/invoke", json={}).status_code == 403
        assert client.delete("/api/v1/functions/private").status_code == 403
    with live.client() as admin:
        assert admin.get("/api/v1/functions/private").json()["target"] == "tr a-z A-Z"
        assert admin.delete("/api/v1/functions/private").status_code == 204
        assert admin.get(f"/api/v1/functions/calls/{call['id']}").status_code == 404


SLEEPY = """
import time, uuid

WORKER = uuid.uuid4().hex  # which process answered (pids repeat in sandboxes' namespaces)

def clean(data):
    started = time.time()
    time.sleep(data.get("seconds", 0))
    return {"by": %r, "worker": WORKER, "started": started, "ended": time.time()}
"""


def test_two_projects_deploy_the_same_name(live: Live) -> None:
    """Both deploy ``clean`` (their own code, under the server's input roots): each runs
    its own in its own pool, at the same time; a member of both names the project."""
    roots = Path(live.settings.input_roots[0])
    tokens = {
        "alpha": live.user_token("fn-alpha", {"alpha": "editor"}),
        "beta": live.user_token("fn-beta", {"beta": "editor"}),
    }
    both = live.user_token("fn-both", {"alpha": "editor", "beta": "viewer"})
    for project, token in tokens.items():
        module = roots / f"{project}_clean.py"
        module.write_text(SLEEPY % project)
        module.chmod(0o644)  # readable by the sandbox user (the server's umask is 077)
        body = {"name": "clean", "kind": "python", "target": f"{project}_clean:clean",
                "env": {"PYTHONPATH": str(roots)}, "max_workers": 1}  # fmt: skip
        with live.client(token) as client:  # the project as ?project= this time
            made = client.post("/api/v1/functions", json=body, params={"project": project})
            assert made.status_code == 201, made.text
            assert made.json()["project"] == project

    def invoke(project: str, out: dict[str, dict]) -> None:
        with live.client(tokens[project]) as client:
            answer = client.post("/api/v1/functions/clean/invoke", json={"seconds": 1.5})
            out[project] = answer.json()

    calls: dict[str, dict] = {}
    threads = [threading.Thread(target=invoke, args=(p, calls)) for p in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    alpha, beta = calls["alpha"], calls["beta"]
    assert alpha["state"] == beta["state"] == "succeeded", calls
    assert (alpha["result"]["by"], alpha["project"]) == ("alpha", "alpha")
    assert (beta["result"]["by"], beta["project"]) == ("beta", "beta")
    assert alpha["result"]["worker"] != beta["result"]["worker"]  # a pool each, one worker each:
    assert alpha["result"]["started"] < beta["result"]["ended"]  # they ran at once
    assert beta["result"]["started"] < alpha["result"]["ended"]

    with live.client(tokens["beta"]) as client:
        assert [c["id"] for c in client.get("/api/v1/functions/clean/calls").json()["items"]] == [
            beta["id"]
        ]
        assert client.get(f"/api/v1/functions/calls/{alpha['id']}").status_code == 404
        listed = client.get("/api/v1/functions").json()["items"]
        assert [(f["name"], f["project"]) for f in listed] == [("clean", "beta")]
    with live.client(both) as client:
        ambiguous = client.get("/api/v1/functions/clean")
        assert ambiguous.status_code == 409
        assert "several projects (alpha, beta)" in ambiguous.json()["error"]["message"]
        assert "?project=" in ambiguous.json()["error"]["hint"]
        shown = client.get("/api/v1/functions/clean", params={"project": "beta"}).json()
        assert shown["target"] == "beta_clean:clean" and shown["workers"] == 1
        logs = client.get("/api/v1/functions/clean/logs", params={"project": "alpha"}).json()
        assert [e["id"] for e in logs["items"]] == [alpha["id"]]
        assert client.get(f"/api/v1/functions/calls/{beta['id']}").json()["project"] == "beta"
        # a viewer of beta: reads beta's, may not invoke or delete it
        params = {"project": "beta"}
        assert (
            client.post("/api/v1/functions/clean/invoke", json={}, params=params).status_code == 403
        )
        assert client.delete("/api/v1/functions/clean", params=params).status_code == 403
        assert (
            client.delete("/api/v1/functions/clean", params={"project": "alpha"}).status_code == 204
        )
        assert client.get("/api/v1/functions/clean").json()["project"] == "beta"  # alone now
    with live.client(tokens["beta"]) as client:
        again = client.post("/api/v1/functions/clean/invoke", json={}).json()
        assert (
            again["result"]["by"] == "beta"
            and again["result"]["worker"] == beta["result"]["worker"]
        )
        assert client.delete("/api/v1/functions/clean").status_code == 204


def test_needs_a_token(live: Live) -> None:
    with live.client(None) as client:
        assert client.get("/api/v1/functions").status_code == 401

"""Hostile values from outside on a live server (issue 12's outside probe, findings 7,
12 and 13): NUL and other characters no program, environment or XML can take in run
inputs, run names, trigger-made inputs and function definitions; a webhook body of
50 000 nested ``[``; an expression-built File without a basename. (Finding 13, ``node``
at registration: ``tests/workflows/test_loading_node.py``.)"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import ECHO, Live, start_server, wait_run
from tests.waiting import until

TOOL = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: cat\n"
ANY = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: 'true'\ninputs:\n  x: Any\n"
ANY += "outputs: []\n"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_server(tmp_path_factory.mktemp("hostile"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def beta(live: Live) -> str:
    return live.user_token("bob", {"beta": "editor"})


def register(client: httpx.Client, content: str, name: str) -> str:
    made = client.post(
        "/api/v1/workflows", data={"content": content, "project": "beta", "name": name}
    )
    assert made.status_code == 201, made.text
    return made.json()["id"]


def post_json(client: httpx.Client, path: str, body: object) -> httpx.Response:
    """``body`` as ASCII JSON (a lone surrogate travels as its ``\\ud800`` escape)."""
    return client.post(
        path, content=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )


def test_run_inputs_and_names_with_nul_or_control_characters_are_a_400(
    live: Live, beta: str
) -> None:
    with live.client(beta) as bob:
        workflow = register(bob, ANY, "any")
        values = [
            "a\u0000b",
            "bell\u0007",
            "\ud800",
            "\ufffe",
            {"nested": ["ok", {"deep": "a\u0000b"}]},
            {"k\u0000ey": 1},
            {"class": "File", "contents": "x", "basename": "a\u0000b"},
        ]
        for value in values:
            answer = post_json(bob, "/api/v1/runs", {"workflow": workflow, "inputs": {"x": value}})
            assert answer.status_code == 400, (value, answer.text)
            message = answer.json()["error"]["message"]
            assert message.startswith("input 'x") and "holds the character" in message, message
        nested = post_json(
            bob,
            "/api/v1/runs",
            {"workflow": workflow, "inputs": {"x": {"nested": ["ok", {"deep": "a\u0000b"}]}}},
        )
        assert "'x.nested[1].deep'" in nested.json()["error"]["message"]
        assert "NUL (U+0000)" in nested.json()["error"]["message"]
        named = post_json(
            bob, "/api/v1/runs", {"workflow": workflow, "inputs": {"x": 1}, "name": "x\u0000y"}
        )
        assert named.status_code == 400 and "name" in named.json()["error"]["message"]
        fine = post_json(
            bob, "/api/v1/runs", {"workflow": workflow, "inputs": {"x": "tab\tand\nnewline"}}
        )
        assert fine.status_code == 201, fine.text
        assert wait_run(bob, fine.json()["id"])["state"] == "succeeded"
        listed = bob.get("/api/v1/runs", params={"project": "beta"}).json()["items"]
        for run in listed:  # every run there is, exports as PROV-XML
            exported = bob.get(f"/api/v1/runs/{run['id']}/prov", params={"format": "xml"})
            assert exported.status_code in (200, 404), exported.text


def test_trigger_made_inputs_with_nul_fail_the_delivery_with_the_reason(
    live: Live, beta: str
) -> None:
    with live.client(beta) as bob:
        made = bob.post(
            "/api/v1/workflows",
            data={"project": "beta", "name": "echo"},
            files={"file": ("echo.cwl", ECHO.read_bytes())},
        )
        assert made.status_code == 201, made.text
        for text in ("name: hk\nkind: webhook\n",):
            assert bob.post("/api/v1/sources?project=beta", content=text.encode()).is_success
        trigger = (
            "name: say\nsource: hk\nworkflow: echo\ninputs: {message: $data.text}\n"
            "retries: {attempts: 1}\n"
        )
        assert bob.post("/api/v1/triggers?project=beta", content=trigger.encode()).is_success
        sent = post_json(bob, "/api/v1/events/hk?project=beta", {"key": "k", "text": "a\u0000b"})
        assert sent.status_code == 202, sent.text
        items = lambda: bob.get("/api/v1/events").json()["items"]  # noqa: E731
        dead = until(lambda: [d for e in items() for d in e["deliveries"] if d["state"] == "dead"])
        assert "input 'message' holds the character NUL (U+0000)" in dead[0]["error"]
        assert dead[0]["run_id"] is None


def test_functions_with_nul_in_env_or_arguments_are_refused_when_deployed(
    live: Live, beta: str
) -> None:
    with live.client(beta) as bob:
        for body in (
            {"name": "f1", "kind": "command", "target": "cat", "env": {"X": "a\u0000b"}},
            {"name": "f2", "kind": "command", "target": ["echo", "a\u0000b"]},
            {"name": "f3", "kind": "command", "target": "echo 'a\u0001b'"},
            {"name": "f4", "kind": "python", "target": "json:dumps", "env": {"Y": "esc\u001b"}},
        ):
            answer = post_json(bob, "/api/v1/functions?project=beta", body)
            assert answer.status_code == 400, (body, answer.text)
            assert "holds the character" in answer.json()["error"]["message"], answer.text


def test_a_deeply_nested_webhook_body_is_a_400_and_the_connection_lives_on(
    live: Live, beta: str
) -> None:
    with live.client(beta) as bob:
        for text in ("name: deep\nkind: webhook\n", "name: deep3\nkind: webhook\nformat: s3\n"):
            assert bob.post("/api/v1/sources?project=beta", content=text.encode()).is_success
        for source in ("deep", "deep3"):
            for body in (b"[" * 50_000, b"[" * 50_000 + b"]" * 50_000, b'{"a":' * 65 + b"1"):
                answer = bob.post(
                    f"/api/v1/events/{source}?project=beta",
                    content=body,
                    headers={"content-type": "application/json"},
                )
                assert answer.status_code == 400, (source, answer.text[:200])
                error = answer.json()["error"]["message"]
                assert "nested more than 64 levels" in error or "not valid JSON" in error, error
                assert bob.get("/health").status_code == 200  # the same keep-alive connection
        for body in ({"key": "a\u0000b"}, {"key": "\ud800"}):
            answer = post_json(bob, "/api/v1/events/deep?project=beta", body)
            assert answer.status_code == 400, answer.text  # stored as text: refused, named
            assert "the item's key holds the character" in answer.json()["error"]["message"]
        for obj, problem in (
            ({"key": "a.txt", "size": "x"}, "s3.object.size is not a number"),
            ({"key": "a%00b", "size": 1}, "s3.object.key holds the character NUL"),
            ({"key": "a.txt", "eTag": 5}, "is not text"),
        ):
            record = {"eventName": "s3:ObjectCreated:Put", "s3": {"bucket": {"name": "b"}}}
            record["s3"]["object"] = obj
            answer = post_json(bob, "/api/v1/events/deep3?project=beta", {"Records": [record]})
            assert answer.status_code == 400, answer.text
            assert problem in answer.json()["error"]["message"], answer.text
        fine = bob.post("/api/v1/events/deep?project=beta", json={"key": "k", "a": [[[1]]]})
        assert fine.status_code == 202


def test_an_expression_built_file_without_a_basename_fails_the_run_clearly(
    live: Live, beta: str
) -> None:
    built = '{"class": "File", "location": "file:///etc/hostname"}'
    document = (
        TOOL + "requirements:\n  InlineJavascriptRequirement: {}\n"
        "inputs:\n  f:\n    type: File\n    inputBinding: {position: 1}\n"
        f"    secondaryFiles:\n      - pattern: '$({built})'\n        required: false\n"
        "outputs:\n  out: {type: stdout}\nstdout: out.txt\n"
    )
    with live.client(beta) as bob:
        workflow = register(bob, document, "nobasename")
        upload = bob.post(
            "/api/v1/uploads", data={"project": "beta"}, files={"file": ("in.txt", b"mine\n")}
        )
        inputs = {"f": {"class": "File", "location": upload.json()["location"]}}
        run = post_json(bob, "/api/v1/runs", {"workflow": workflow, "inputs": inputs})
        assert run.status_code == 201, run.text
        done = wait_run(bob, run.json()["id"])
    assert done["state"] == "failed", done
    assert [s["state"] for s in done["steps"]] == ["failed"]
    assert "malformed" in done["steps"][0]["message"]
    assert "basename" in done["steps"][0]["message"]

"""PROV between two projects, probed through the API: an element id one project chose, a
run's ``twin:run/…`` ids and a file content both projects used never bring one
project's elements or attributes into the other's answers; another project's document
id is refused cleanly, saying nothing about it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import Live, start_server, wait_run

CAT = b"""cwlVersion: v1.2
class: CommandLineTool
baseCommand: [cat]
inputs: {f: {type: File, inputBinding: {position: 1}}}
stdout: out.txt
outputs: {out: {type: stdout}}
"""
SECRET = "--password=hunter2"


def _document(element: str, **attributes: str) -> dict:
    return {
        "prefix": {"ex": "http://example.org/", "twin": "https://twinengine.org/prov#"},
        "entity": {element: {f"ex:{k}": v for k, v in attributes.items()}},
        "activity": {"ex:use": {}},
        "used": {"_:u1": {"prov:activity": "ex:use", "prov:entity": element}},
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_server(tmp_path_factory.mktemp("prov-tenants"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tenants(live: Live) -> dict[str, str]:
    return {
        "alice": live.user_token("alice", {"alpha": "editor"}),
        "bob": live.user_token("bob", {"beta": "editor"}),
        "vera": live.user_token("vera", {"alpha": "viewer"}),
    }


def _run(client: httpx.Client, project: str, content: bytes) -> dict[str, Any]:
    workflow = client.post(
        "/api/v1/workflows", files={"file": ("cat.cwl", CAT)}, data={"project": project}
    ).json()
    upload = client.post(
        "/api/v1/uploads", files={"file": ("in.txt", content)}, data={"project": project}
    ).json()
    inputs = {"f": {"class": "File", "location": upload["location"]}}
    made = client.post("/api/v1/runs", json={"workflow": workflow["id"], "inputs": inputs})
    assert made.status_code == 201, made.text
    done = wait_run(client, made.json()["id"])
    assert done["state"] == "succeeded", done
    return {**done, "upload": upload["id"]}


def _same_as_missing(client: httpx.Client, path: str, theirs: str, params: Any = None) -> None:
    """``theirs`` answers exactly as an id nobody has."""
    found = client.get(path.format(theirs), params=params)
    missing = client.get(path.format("ex:nobody-has-this"), params=params)
    assert found.status_code == missing.status_code == 404, (found.text, missing.text)
    assert found.text.replace(theirs, "ID") == missing.text.replace("ex:nobody-has-this", "ID")


def test_an_element_id_another_project_chose_stays_theirs(live: Live, tenants: dict) -> None:
    with live.client(tenants["alice"]) as alice:
        made = alice.put(
            "/api/v1/prov/documents/alice-doc",
            params={"project": "alpha"},
            content=json.dumps(_document("ex:bobdata", commandLine=SECRET)),
        )
        assert made.status_code == 201, made.text
    with live.client(tenants["bob"]) as bob:
        _same_as_missing(bob, "/api/v1/prov/elements/{}", "ex:bobdata")
        _same_as_missing(bob, "/api/v1/prov/lineage?target={}", "ex:bobdata")
        added = bob.post(
            "/api/v1/prov/documents/bob-doc/elements",
            params={"project": "beta"},
            json={"id": "ex:bobdata", "kind": "entity", "attributes": {"ex:mine": "yes"}},
        )
        assert added.status_code == 201, added.text
        mine = bob.get("/api/v1/prov/elements/ex:bobdata").json()
        assert mine["attributes"] == {"ex:mine": "yes"}
        for fmt in ("json", "provn", "xml", "ttl"):
            text = bob.get("/api/v1/prov/documents/bob-doc", params={"format": fmt}).text
            assert SECRET not in text and "hunter2" not in text, fmt
        walk = bob.get("/api/v1/prov/lineage", params={"target": "ex:bobdata", "direction": "both"})
        assert walk.status_code == 200 and "ex:use" not in walk.text and SECRET not in walk.text
    with live.client(tenants["alice"]) as alice:
        theirs = alice.get("/api/v1/prov/elements/ex:bobdata").json()
        assert theirs["attributes"] == {"ex:commandLine": SECRET}  # untouched by bob


def test_runs_and_shared_content_never_cross_projects(live: Live, tenants: dict) -> None:
    shared = b"the same bytes in two projects\n"
    with live.client(tenants["alice"]) as alice:
        theirs = _run(alice, "alpha", shared)
        alice_doc = alice.get(f"/api/v1/runs/{theirs['id']}/prov").text
    with live.client(tenants["bob"]) as bob:
        ours = _run(bob, "beta", shared)
        run_id = f"twin:run/{theirs['id']}"
        _same_as_missing(bob, "/api/v1/prov/elements/{}", run_id)
        for body in (
            {"id": f"{run_id}/step/x", "kind": "activity"},
            {"id": run_id, "kind": "activity", "attributes": {"ex:forged": "1"}},
        ):
            answer = bob.post(
                "/api/v1/prov/documents/bob-run-doc/elements", params={"project": "beta"}, json=body
            )
            assert answer.status_code == 404 and "no run" in answer.json()["error"]["message"]
        related = bob.post(
            "/api/v1/prov/documents/bob-run-doc/relations",
            params={"project": "beta"},
            json={"kind": "used", "subject": "ex:mine", "object": run_id},
        )
        assert related.status_code == 404
        put = bob.put(
            "/api/v1/prov/documents/bob-forge",
            params={"project": "beta"},
            content=json.dumps(_document(run_id)),
        )
        assert put.status_code == 404
        # the content both runs read is one entity per project: bob's says where bob's was
        doc = bob.get(f"/api/v1/runs/{ours['id']}/prov").text
        assert theirs["upload"] not in doc and ours["upload"] in doc
        digest = bob.get(f"/api/v1/runs/{ours['id']}/outputs").json()["outputs"]["out"]["sha256"]
        walk = bob.get("/api/v1/prov/lineage", params={"target": digest, "direction": "both"})
        assert walk.status_code == 200
        assert theirs["id"] not in walk.text and theirs["upload"] not in walk.text
    assert ours["upload"] not in alice_doc


def test_another_projects_document_id_is_refused_cleanly(live: Live, tenants: dict) -> None:
    with live.client(tenants["alice"]) as alice:
        alice.put(
            "/api/v1/prov/documents/taken-id",
            params={"project": "alpha"},
            content=json.dumps(_document("ex:x")),
        )
    with live.client(tenants["bob"]) as bob:
        for answer in (
            bob.put("/api/v1/prov/documents/taken-id", content=json.dumps(_document("ex:y"))),
            bob.put(
                "/api/v1/prov/documents/taken-id",
                params={"project": "beta"},
                content=json.dumps(_document("ex:y")),
            ),
            bob.post(
                "/api/v1/prov/documents/taken-id/elements",
                params={"project": "beta"},
                json={"id": "ex:y", "kind": "entity"},
            ),
        ):
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"]["code"] == "conflict"
            assert "alpha" not in answer.text and "alice" not in answer.text
        assert bob.get("/api/v1/prov/documents/taken-id").status_code == 404
        assert bob.delete("/api/v1/prov/documents/taken-id").status_code == 404
    with live.client(tenants["vera"]) as viewer:
        denied = viewer.put(
            "/api/v1/prov/documents/taken-id", content=json.dumps(_document("ex:z"))
        )
        assert denied.status_code == 403
    with live.client(tenants["alice"]) as alice:
        kept = alice.get("/api/v1/prov/documents/taken-id", params={"format": "provn"}).text
        assert "ex:x" in kept and "ex:y" not in kept and "ex:z" not in kept


TWIN = "https://twinengine.org/prov#"


def _spellings(run: str) -> list[tuple[str, str]]:
    """``(format, document)`` naming ``twin:run/<run>`` without writing ``twin:``."""
    xml = (
        '<prov:document xmlns:prov="http://www.w3.org/ns/prov#" xmlns:t2="{ns}"{default}>'
        '<prov:activity prov:id="{id}"/></prov:document>'
    )
    return [
        ("json", json.dumps({"prefix": {"t2": TWIN}, "activity": {f"t2:run/{run}": {}}})),
        ("json", json.dumps({"prefix": {"default": TWIN}, "activity": {f"run/{run}": {}}})),
        ("json", json.dumps({"prefix": {"t2": TWIN + "run/"}, "activity": {f"t2:{run}": {}}})),
        (
            "json",
            json.dumps(
                {
                    "prefix": {"t2": TWIN, "ex": "http://example.org/"},
                    "entity": {
                        "ex:e": {"ex:about": {"$": f"t2:run/{run}", "type": "prov:QUALIFIED_NAME"}}
                    },
                }
            ),
        ),
        ("provn", f"document\nprefix t2 <{TWIN}>\nactivity(t2:run/{run}/step/x)\nendDocument"),
        ("provn", f"document\ndefault <{TWIN}>\nactivity(run/{run})\nendDocument"),
        ("xml", xml.format(ns=TWIN, default="", id=f"t2:run/{run}")),
        ("xml", xml.format(ns=TWIN, default=f' xmlns="{TWIN}"', id=f"run/{run}")),
        (
            "ttl",
            f"@prefix prov: <http://www.w3.org/ns/prov#> .\n<{TWIN}run/{run}> a prov:Activity .",
        ),
        (
            "ttl",
            f"@prefix prov: <http://www.w3.org/ns/prov#> .\n@prefix t2: <{TWIN}run/> .\n"
            f"t2:{run} a prov:Activity .",
        ),
    ]


def test_a_run_id_is_recognised_whatever_prefix_spells_it(live: Live, tenants: dict) -> None:
    with live.client(tenants["alice"]) as alice:
        theirs = _run(alice, "alpha", b"alpha's input\n")
    with live.client(tenants["bob"]) as bob:
        ours = _run(bob, "beta", b"beta's input\n")
        for number, (fmt, text) in enumerate(_spellings(theirs["id"])):
            answer = bob.put(
                f"/api/v1/prov/documents/iri-{number}",
                params={"format": fmt, "project": "beta"},
                content=text,
            )
            assert answer.status_code == 404, (fmt, text, answer.text)
            assert "no run" in answer.json()["error"]["message"]
        for number, (fmt, text) in enumerate(_spellings(ours["id"])):
            answer = bob.put(
                f"/api/v1/prov/documents/own-{number}",
                params={"format": fmt, "project": "beta"},
                content=text,
            )
            assert answer.status_code == 201, (fmt, text, answer.text)
            shown = bob.get(f"/api/v1/prov/documents/own-{number}", params={"format": "provn"})
            assert f"twin:run/{ours['id']}" in shown.text
        rebound = bob.put(
            "/api/v1/prov/documents/rebound",
            params={"project": "beta"},
            content=json.dumps(
                {"prefix": {"twin": "http://example.org/"}, "activity": {"twin:run/x": {}}}
            ),
        )
        assert rebound.status_code == 400 and "'twin'" in rebound.json()["error"]["message"]
        # the online routes read ids under the namespaces the document declared
        declared = bob.put(
            "/api/v1/prov/documents/online-t2",
            params={"project": "beta"},
            content=json.dumps({"prefix": {"t2": TWIN}, "entity": {"t2:mine": {}}}),
        )
        assert declared.status_code == 201, declared.text
        for path, body in (
            ("elements", {"id": f"t2:run/{theirs['id']}", "kind": "activity"}),
            (
                "elements",
                {"id": "ex:a", "kind": "entity", "attributes": {"ex:r": f"t2:run/{theirs['id']}"}},
            ),
            (
                "relations",
                {"kind": "used", "subject": "t2:mine", "object": f"t2:run/{theirs['id']}"},
            ),
        ):
            answer = bob.post(f"/api/v1/prov/documents/online-t2/{path}", json=body)
            assert answer.status_code == 404, (body, answer.text)
        ok = bob.post(
            "/api/v1/prov/documents/online-t2/elements",
            json={"id": f"t2:run/{ours['id']}/note", "kind": "entity"},
        )
        assert ok.status_code == 201 and ok.json()["id"] == f"twin:run/{ours['id']}/note"

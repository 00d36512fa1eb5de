"""Provenance through the API: batch documents, online elements/relations, lineage, exports."""

from __future__ import annotations

import io
import json
import zipfile

from tests.api.conftest import ECHO, Live, wait_run

DOCUMENT = {
    "prefix": {"ex": "https://example.org/"},
    "entity": {"ex:raw": {"prov:label": "raw data"}, "ex:clean": {}},
    "activity": {"ex:cleaning": {}},
    "used": {"_:u1": {"prov:activity": "ex:cleaning", "prov:entity": "ex:raw"}},
    "wasGeneratedBy": {"_:g1": {"prov:entity": "ex:clean", "prov:activity": "ex:cleaning"}},
}


def test_batch_documents_put_get_delete(api: Live) -> None:
    with api.client() as client:
        made = client.put("/api/v1/prov/documents/survey-1", content=json.dumps(DOCUMENT))
        assert made.status_code == 201, made.text
        provn = client.get("/api/v1/prov/documents/survey-1", params={"format": "provn"})
        assert "used(ex:cleaning, ex:raw" in provn.text
        assert provn.headers["content-type"].startswith("text/provenance-notation")
        replaced = client.put("/api/v1/prov/documents/survey-1", content=json.dumps(DOCUMENT))
        assert replaced.status_code == 200
        bad = client.put("/api/v1/prov/documents/survey-2", content=b"{not json")
        assert bad.status_code == 400 and "PROV-JSON" in bad.json()["error"]["message"]
        bad_id = client.put("/api/v1/prov/documents/a%20b", content=json.dumps(DOCUMENT))
        assert bad_id.status_code == 400
        client.put("/api/v1/prov/documents/survey-3", content=json.dumps(DOCUMENT))
        ids = {d["id"] for d in client.get("/api/v1/prov/documents").json()["items"]}
        assert {"survey-1", "survey-3"} <= ids
        assert (
            client.delete("/api/v1/prov/documents", params={"ids": "survey-1,survey-3"}).status_code
            == 204
        )
        assert client.get("/api/v1/prov/documents/survey-1").status_code == 404


def test_online_elements_relations_and_lineage(api: Live) -> None:
    with api.client() as client:
        for element in (
            {"id": "ex:sensor-batch-7", "kind": "entity", "label": "batch 7"},
            {"id": "ex:calibrate", "kind": "activity", "start_time": "2026-01-01T00:00:00Z"},
            {"id": "ex:calibrated-7", "kind": "entity"},
        ):
            answer = client.post("/api/v1/prov/documents/live-1/elements", json=element)
            assert answer.status_code == 201, answer.text
        for kind, subject, obj in (
            ("used", "ex:calibrate", "ex:sensor-batch-7"),
            ("wasGeneratedBy", "ex:calibrated-7", "ex:calibrate"),
        ):
            answer = client.post(
                "/api/v1/prov/documents/live-1/relations",
                json={"kind": kind, "subject": subject, "object": obj},
            )
            assert answer.status_code == 201, answer.text
        wrong = client.post(
            "/api/v1/prov/documents/live-1/relations",
            json={"kind": "likes", "subject": "a", "object": "b"},
        )
        assert wrong.status_code == 400 and "unknown PROV relation" in wrong.text
        ancient = {
            "id": "ex:roman-survey",
            "kind": "activity",
            "start_time": "0140-01-24T21:12:58Z",
        }
        assert client.post("/api/v1/prov/documents/old-1/elements", json=ancient).status_code == 201
        back = client.get("/api/v1/prov/elements/ex:roman-survey").json()
        assert back["start_time"].startswith("0140-01-24")
        elements = client.get("/api/v1/prov/documents/live-1/elements").json()["items"]
        assert [e["id"] for e in elements] == [
            "ex:calibrate",
            "ex:calibrated-7",
            "ex:sensor-batch-7",
        ]
        assert len(client.get("/api/v1/prov/documents/live-1/relations").json()["items"]) == 2
        up = client.get("/api/v1/prov/lineage", params={"target": "ex:calibrated-7"}).json()
        assert {n["id"] for n in up["nodes"]} == {
            "ex:calibrated-7",
            "ex:calibrate",
            "ex:sensor-batch-7",
        }
        one = client.get(
            "/api/v1/prov/lineage", params={"target": "ex:calibrated-7", "depth": 1}
        ).json()
        assert {n["id"] for n in one["nodes"]} == {"ex:calibrated-7", "ex:calibrate"}
        assert client.get("/api/v1/prov/elements/ex:calibrate").json()["kind"] == "activity"
        # 'ex' was never declared: every export still writes it (a namespace is made up)
        for fmt in ("json", "provn", "xml", "ttl"):
            exported = client.get("/api/v1/prov/documents/live-1", params={"format": fmt})
            assert exported.status_code == 200 and "twinengine.org/ns/ex#" in exported.text
        for bad_id in ("0", "no prefix", ":x", "ex:a b", "ex:bell\x07", "¢õ\x19h%U&"):
            refused = client.post(
                "/api/v1/prov/documents/live-1/elements", json={"id": bad_id, "kind": "entity"}
            )
            assert refused.status_code == 400, (bad_id, refused.text)
            assert "element id" in refused.json()["error"]["message"]
        refused = client.post(
            "/api/v1/prov/documents/live-1/relations",
            json={"kind": "used", "subject": "ex:calibrate", "object": "raw file"},
        )
        assert refused.status_code == 400 and "object" in refused.json()["error"]["message"]
        # a path on the server is never read through the API
        probe = client.get("/api/v1/prov/lineage", params={"target": "/etc/hostname"})
        assert probe.status_code == 404
    outsider = api.user_token("prov-outsider", {"other": "owner"})
    with api.client(token=outsider) as client:
        assert client.get("/api/v1/prov/documents/live-1").status_code == 404
        assert (
            client.get("/api/v1/prov/lineage", params={"target": "ex:calibrated-7"}).status_code
            == 404
        )
        assert client.get("/api/v1/prov/elements/ex:calibrate").status_code == 404
        denied = client.post(
            "/api/v1/prov/documents/live-1/elements", json={"id": "ex:x", "kind": "entity"}
        )
        # the id is taken by another project: refused, and nothing about it is said
        assert denied.status_code == 409, denied.text
        assert "live-1" in denied.json()["error"]["message"]
        assert "prov-" not in denied.text and "default" not in denied.text


def test_a_run_document_in_every_format(api: Live) -> None:
    with api.client() as client:
        workflow = client.post(
            "/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())}
        ).json()
        run = client.post(
            "/api/v1/runs", json={"workflow": workflow["id"], "inputs": {"message": "traced"}}
        ).json()
        assert wait_run(client, run["id"])["state"] == "succeeded"
        base = f"/api/v1/runs/{run['id']}/prov"
        assert json.loads(client.get(base).text)["activity"]
        assert client.get(base, params={"format": "provn"}).text.startswith("document")
        assert "<prov:document" in client.get(base, params={"format": "xml"}).text
        assert "@prefix prov:" in client.get(base, params={"format": "ttl"}).text
        assert client.get(base, params={"format": "svg"}).text.lstrip().startswith("<svg")
        graph = client.get(base, params={"format": "graph"}).json()
        output = next(n for n in graph["nodes"] if n["label"] == "output.txt")
        crate = zipfile.ZipFile(io.BytesIO(client.get(base, params={"format": "rocrate"}).content))
        assert "ro-crate-metadata.json" in crate.namelist()
        outputs = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]
        assert f"sha256:{outputs['output']['sha256']}" == output["id"]  # the lineage target
        lineage = client.get("/api/v1/prov/lineage", params={"target": output["id"]}).json()
        assert any(e["kind"] == "wasGeneratedBy" for e in lineage["edges"])
        assert client.get(base, params={"format": "pdf"}).status_code == 422

"""The workflow registry through the API: uploads, archives, validation, the composer."""

from __future__ import annotations

import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path

from tests.api.conftest import ECHO, Live, start_server, wait_run

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples/hello-twin"


def tar_gz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buffer.getvalue()


def hello_archive() -> bytes:
    members = {"workflow.cwl": (HELLO / "workflow.cwl").read_bytes()}
    for path in sorted((HELLO / "steps").iterdir()):
        if path.is_file():
            members[f"steps/{path.name}"] = path.read_bytes()
    return tar_gz(members)


def test_register_a_file_then_new_versions(api: Live) -> None:
    with api.client() as client:
        first = client.post("/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())})
        assert first.status_code == 201, first.text
        body = first.json()
        assert (body["name"], body["version"], body["class"]) == ("echo", 1, "CommandLineTool")
        assert body["inputs"] == [
            {"id": "message", "type": "string", "label": None, "doc": None, "optional": False}
        ]
        assert [n["kind"] for n in body["graph"]["nodes"]] == ["input", "step", "output"]
        second = client.post(
            "/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())}
        ).json()
        assert second["version"] == 2
        page = client.get("/api/v1/workflows", params={"name": "echo", "limit": 1}).json()
        assert page["total"] == 2 and [w["version"] for w in page["items"]] == [2]
        assert "baseCommand: echo" in client.get(f"/api/v1/workflows/{body['id']}/content").text
        assert client.delete(f"/api/v1/workflows/{body['id']}").status_code == 204
        assert client.get(f"/api/v1/workflows/{body['id']}").status_code == 404


def test_register_an_archive_and_run_it(api: Live, monkeypatch) -> None:
    # the steps run `python3` from PATH: this environment's, which has matplotlib
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with api.client() as client:
        made = client.post(
            "/api/v1/workflows",
            data={"name": "hello-twin"},
            files={"file": ("hello.tar.gz", hello_archive())},
        )
        assert made.status_code == 201, made.text
        workflow = made.json()
        steps = [n["id"] for n in workflow["graph"]["nodes"] if n["kind"] == "step"]
        assert steps == ["aggregate", "clean", "generate", "plot"]
        assert {"source": "generate", "target": "clean", "label": "series"} in (
            workflow["graph"]["edges"]
        )
        run = client.post(
            "/api/v1/runs", json={"workflow": workflow["id"], "inputs": {"samples": 300}}
        ).json()
        done = wait_run(client, run["id"])
        assert done["state"] == "succeeded", (done["error"], done["steps"])
        assert [s["state"] for s in done["steps"]] == ["succeeded"] * 4
        outputs = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]
        png = client.get(outputs["plot_png"]["download"])
        assert png.headers["content-type"] == "image/png" and png.content[:4] == b"\x89PNG"


def test_zip_archive_with_main_named(api: Live) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tools/echo.cwl", ECHO.read_bytes())
        archive.writestr("tools/other.cwl", ECHO.read_bytes())
        archive.writestr("README.md", "hi")
    with api.client() as client:
        vague = client.post("/api/v1/workflows", files={"file": ("t.zip", buffer.getvalue())})
        assert vague.status_code == 400
        assert "main" in vague.json()["error"]["hint"]
        named = client.post(
            "/api/v1/workflows",
            data={"main": "tools/echo.cwl", "name": "zipped"},
            files={"file": ("t.zip", buffer.getvalue())},
        )
        assert named.status_code == 201 and named.json()["main"] == "tools/echo.cwl"


def test_bad_uploads_are_clear_4xx(api: Live) -> None:
    cases = {
        "traversal": ("evil.tar.gz", tar_gz({"../../escape.cwl": b"x"}), "'..'"),
        "absolute": ("abs.tar.gz", tar_gz({"/etc/evil.cwl": b"x"}), "absolute"),
        "symlink": ("link.tar.gz", tar_gz({"a.cwl": b"x"}, {"main.cwl": "/etc/passwd"}), "link"),
        "not cwl": ("notes.txt", b"hello", "neither a CWL document"),
        "broken zip": ("w.zip", b"PK\x03\x04 broken", "zip"),
        "invalid": (
            "bad.cwl",
            b"cwlVersion: v1.2\nclass: CommandLineTool\ninputs: 3\n",
            "does not validate",
        ),
    }
    with api.client() as client:
        for label, (name, data, words) in cases.items():
            answer = client.post("/api/v1/workflows", files={"file": (name, data)})
            assert answer.status_code == 400, (label, answer.text)
            assert words in answer.json()["error"]["message"], (label, answer.text)
        assert client.post("/api/v1/workflows").status_code == 400
    assert not (api.settings.home.parent / "escape.cwl").exists()


def test_validate_reports_line_and_column(api: Live) -> None:
    bad = (
        b"cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: echo\n"
        b"inputs:\n  x:\n    type: strng\noutputs: []\n"
    )
    with api.client() as client:
        result = client.post("/api/v1/workflows/validate", data={"content": bad.decode()}).json()
        assert result["valid"] is False
        located = [e for e in result["errors"] if e["line"]]
        assert {e["file"] for e in located} == {"workflow.cwl"}
        assert any(e["line"] == 6 and "strng" in e["message"] for e in located), located
        good = client.post(
            "/api/v1/workflows/validate", files={"file": ("e.cwl", ECHO.read_bytes())}
        )
        assert good.json()["valid"] is True and good.json()["class"] == "CommandLineTool"
        assert client.get("/api/v1/workflows", params={"name": "e"}).json()["total"] == 0


def test_uploads_over_the_limit_are_413(tmp_path: Path) -> None:
    live = start_server(tmp_path / "home", max_upload_mb=1)
    try:
        with live.client() as client:
            big = b"#" * (1024 * 1024 + 10)
            answer = client.post("/api/v1/workflows", files={"file": ("big.cwl", big)})
            assert answer.status_code == 413
            assert "larger than 1 MB" in answer.json()["error"]["message"]
            answer = client.post("/api/v1/uploads", files={"file": ("big.bin", big)})
            assert answer.status_code == 413
            huge = client.post("/api/v1/uploads", files={"file": ("huge.bin", big * 3)})
            assert huge.status_code == 413 and "request body" in huge.json()["error"]["message"]
        assert not any((live.settings.home / "uploads").glob("*/*"))
    finally:
        live.stop()


def compose_spec(**extra) -> dict:
    return {
        "name": "say-and-count",
        "inputs": [{"id": "message", "type": "string", "default": "hello composer"}],
        "steps": [
            {"id": "say", "run": "template:echo", "in": {"message": {"source": "message"}}},
            {"id": "count", "run": "template:wc", "in": {"file": {"source": "say/output"}}},
        ],
        "outputs": [{"id": "counts", "source": "count/output"}],
        "layout": {"say": {"x": 10, "y": 20}, "count": {"x": 200, "y": 20}},
        **extra,
    }


def test_compose_two_steps_save_and_run(api: Live) -> None:
    with api.client() as client:
        palette = client.get("/api/v1/palette").json()["items"]
        refs = {item["ref"] for item in palette}
        assert {"template:echo", "template:wc", "template:cat", "template:python"} <= refs
        dry = client.post("/api/v1/workflows/compose", json=compose_spec(dry_run=True))
        assert dry.status_code == 200 and dry.json()["valid"] is True
        assert "outputSource: count/output" in dry.json()["cwl"]
        made = client.post("/api/v1/workflows/compose", json=compose_spec())
        assert made.status_code == 201, made.text
        workflow = made.json()
        assert workflow["layout"]["count"] == {"x": 200, "y": 20}
        assert workflow["outputs"][0]["type"] == "File"
        run = client.post("/api/v1/runs", json={"workflow": workflow["id"], "inputs": {}}).json()
        assert wait_run(client, run["id"])["state"] == "succeeded"
        link = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["counts"]
        assert client.get(link["download"]).text.split()[:2] == ["1", "2"]  # 1 line, 2 words
        # a registered workflow is a palette item too, and can be a step of the next one
        nested = compose_spec(name="nested")
        nested["steps"] = [{"id": "inner", "run": workflow["id"], "in": {}}]
        nested["outputs"] = [{"id": "counts", "source": "inner/counts"}]
        again = client.post("/api/v1/workflows/compose", json=nested)
        assert again.status_code == 201, again.text


def test_compose_errors_name_the_step_and_port(api: Live) -> None:
    broken = {
        "unknown template": ({"run": "template:nope"}, "no template 'nope'"),
        "unknown port": (
            {"in": {"message": {"source": "message"}, "colour": {"default": 1}}},
            "has no input 'colour'",
        ),
        "unwired": ({"in": {}}, "input(s) message need a value"),
        "dangling": ({"in": {"message": {"source": "ghost/out"}}}, "'ghost/out' is neither"),
    }
    with api.client() as client:
        for label, (change, words) in broken.items():
            spec = compose_spec()
            spec["steps"][0].update(change)
            answer = client.post("/api/v1/workflows/compose", json=spec)
            assert answer.status_code == 400, (label, answer.text)
            assert words in answer.json()["error"]["message"], (label, answer.text)
        loop = compose_spec()
        loop["steps"][0]["run"] = "template:sort"
        loop["steps"][0]["in"] = {"file": {"source": "count/output"}}
        answer = client.post("/api/v1/workflows/compose", json=loop)
        assert "loop" in answer.json()["error"]["message"]
        dry = client.post("/api/v1/workflows/compose", json={**spec, "dry_run": True})
        assert dry.status_code == 200 and dry.json()["valid"] is False
        assert "neither a workflow input" in dry.json()["errors"][0]["message"]
        invalid = client.post("/api/v1/workflows/compose", json={"name": "x", "steps": "no"})
        assert invalid.status_code == 422 and invalid.json()["error"]["details"]


def test_the_ai_tools_are_palette_templates(api: Live) -> None:
    """train → register → deploy composed from the palette validates as one workflow."""
    with api.client() as client:
        palette = {i["ref"]: i for i in client.get("/api/v1/palette").json()["items"]}
        for name in ("train", "tune", "register", "promote", "predict", "serve"):
            assert f"template:ai-{name}" in palette
        assert {p["id"] for p in palette["template:ai-train"]["outputs"]} >= {"run_id", "model"}
        spec = {
            "name": "train-and-deploy",
            "inputs": [
                {"id": "config", "type": "File"},
                {"id": "tracking_uri", "type": "string"},
            ],
            "steps": [
                {
                    "id": "train",
                    "run": "template:ai-train",
                    "in": {
                        "config": {"source": "config"},
                        "tracking_uri": {"source": "tracking_uri"},
                    },
                },
                {
                    "id": "register",
                    "run": "template:ai-register",
                    "in": {
                        "run_id": {"source": "train/run_id"},
                        "name": {"default": "flood"},
                        "tracking_uri": {"source": "tracking_uri"},
                    },
                },
                {
                    "id": "deploy",
                    "run": "template:ai-promote",
                    "in": {
                        "name": {"source": "register/name"},
                        "version": {"source": "register/version"},
                        "tracking_uri": {"source": "tracking_uri"},
                    },
                },
            ],
            "outputs": [{"id": "deployed", "source": "deploy/model"}],
            "dry_run": True,
        }
        dry = client.post("/api/v1/workflows/compose", json=spec)
        assert dry.status_code == 200, dry.text
        assert dry.json()["valid"] is True, dry.json()

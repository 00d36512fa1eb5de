"""Tenants of a shared server probe document loading, run inputs and triggers from
outside (issue 12, items 2, 3, 4 and 15): every scenario is refused with a clear 4xx
that reveals nothing of the server, and the legitimate in-upload forms still run."""

from __future__ import annotations

import http.server
import io
import socket
import struct
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Live, start_server, wait_run
from tests.waiting import until

PASSWD_LINE = "root:x:0:0"
TOOL = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: cat\n"
CAT = (
    TOOL + "inputs:\n  f: {type: File, inputBinding: {position: 1}}\n"
    "outputs:\n  out: {type: stdout}\nstdout: out.txt\n"
)


class Recorder(http.server.BaseHTTPRequestHandler):
    """An HTTP server that notes every request (none must reach it)."""

    hits: list[str] = []

    def do_GET(self) -> None:
        Recorder.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"secret")

    def log_message(self, *args: object) -> None:
        pass


class Tenants:
    def __init__(self, live: Live, recorder: int, silent: int, watched: Path) -> None:
        self.live, self.recorder, self.silent, self.watched = live, recorder, silent, watched
        self.ann = live.user_token("ann", {"alpha": "editor"})
        self.bob = live.user_token("bob", {"beta": "editor"})
        self.carl = live.user_token("carl", {"alpha": "viewer"}, scopes=("read",))
        self.dan = live.user_token("dan", {}, scopes=("read",))

    def client(self, token: str) -> httpx.Client:
        return self.live.client(token)


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    recorder = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    watched = tmp_path_factory.mktemp("watched")
    live = start_server(
        tmp_path_factory.mktemp("shared-serve"),
        fetch_hosts=(f"127.0.0.1:{silent.getsockname()[1]}",),
        fetch_timeout=3,
        watch_roots=(watched,),
    )
    yield Tenants(live, recorder.server_address[1], silent.getsockname()[1], watched)
    live.stop()
    silent.close()
    recorder.shutdown()


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


def reveals_nothing(text: str, live: Live) -> None:
    assert PASSWD_LINE not in text and "PATH=" not in text and "secret" not in text
    assert str(live.settings.home) not in text and "/etc/" not in text, text


def test_validating_needs_a_role_in_the_project(tenants: Tenants) -> None:
    document = {"content": TOOL + "inputs: []\noutputs: []\n"}
    with tenants.client(tenants.carl) as viewer:  # a read-only token, viewer of alpha
        answer = viewer.post("/api/v1/workflows/validate", data={**document, "project": "alpha"})
        assert answer.status_code == 200 and answer.json()["valid"] is True
    with tenants.client(tenants.dan) as outsider:  # read scope, no project
        answer = outsider.post("/api/v1/workflows/validate", data=document)
        assert answer.status_code == 404 and "no project" in answer.json()["error"]["message"]
    with tenants.client(tenants.bob) as other:
        answer = other.post("/api/v1/workflows/validate", data={**document, "project": "alpha"})
        assert answer.status_code == 404


def test_documents_cannot_reach_server_files_or_urls(tenants: Tenants) -> None:
    live = tenants.live
    with tenants.client(tenants.bob) as bob:  # another project's registered files
        made = bob.post(
            "/api/v1/workflows",
            data={"project": "beta"},
            files={"file": ("b.tar.gz", tar_gz({"main.cwl": CAT.encode(), "s.txt": b"secret"}))},
        )
        assert made.status_code == 201, made.text
        theirs = made.json()["id"]
    url = f"http://127.0.0.1:{tenants.recorder}/doc"
    probes = {
        "passwd": "doc: {$include: /etc/passwd}\n",
        "shadow": "doc: {$include: /etc/shadow}\n",
        "environ": "doc: {$include: /proc/self/environ}\n",
        "another project": f"doc: {{$include: ../{theirs}/s.txt}}\n",
        "file url": "doc: {$include: 'file:///etc/passwd'}\n",
        "http": f"doc: {{$include: '{url}'}}\n",
        "import": "hints: {$import: /etc/passwd}\n",
        "mixin": "requirements:\n  - {$mixin: /etc/passwd, class: EnvVarRequirement}\n",
        "schemadef": "requirements:\n  SchemaDefRequirement: {types: [{$import: /etc/passwd}]}\n",
        "default": "inputs:\n  f: {type: File, default: {class: File, location: /etc/hostname}}\n",
        "iwd": "requirements:\n  InitialWorkDirRequirement:\n    listing: "
        "[{class: File, location: 'file:///etc/hostname'}]\n",
    }
    with tenants.client(tenants.ann) as ann:
        for label, body in probes.items():
            text = TOOL + body
            text += "" if "inputs:" in body else "inputs: []\n"
            text += "outputs: []\n"
            checked = ann.post(
                "/api/v1/workflows/validate", data={"content": text, "project": "alpha"}
            )
            assert checked.status_code == 200 and checked.json()["valid"] is False, label
            reveals_nothing(checked.text, live)
            made = ann.post("/api/v1/workflows", data={"content": text, "project": "alpha"})
            assert made.status_code == 400, (label, made.text)
            reveals_nothing(made.text, live)
        for run in ("file:///etc/passwd", f"../{theirs}/main.cwl", url):
            workflow = (
                "cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\n"
                f"steps:\n  a:\n    run: '{run}'\n    in: []\n    out: []\n"
            )
            made = ann.post("/api/v1/workflows", data={"content": workflow, "project": "alpha"})
            assert made.status_code == 400, (run, made.text)
            reveals_nothing(made.text, live)
        linked = tar_gz({"a.txt": b"x"}, {"main.cwl": "/etc/passwd"})
        made = ann.post(
            "/api/v1/workflows", data={"project": "alpha"}, files={"file": ("l.tgz", linked)}
        )
        assert made.status_code == 400 and "link" in made.json()["error"]["message"]
    assert Recorder.hits == []  # the URL a document named was never contacted


def test_the_composer_writes_no_way_out_either(tenants: Tenants) -> None:
    hostname = {"class": "File", "location": "file:///etc/hostname"}
    spec = {
        "name": "composed",
        "project": "alpha",
        "inputs": [{"id": "data", "type": "File", "default": hostname}],
        "steps": [{"id": "wc", "run": "template:wc", "in": {"file": {"source": "data"}}}],
        "outputs": [{"id": "counts", "source": "wc/output"}],
    }
    with tenants.client(tenants.ann) as ann:
        dry = ann.post("/api/v1/workflows/compose", json={**spec, "dry_run": True})
        assert dry.status_code == 200 and dry.json()["valid"] is False
        assert "not found or not allowed" in dry.text
        saved = ann.post("/api/v1/workflows/compose", json=spec)
        assert saved.status_code == 400 and "not found or not allowed" in saved.text
        reveals_nothing(saved.text.replace("file:///etc/hostname", ""), tenants.live)
        spec["inputs"][0]["default"] = None  # the same drawing without the default saves
        assert ann.post("/api/v1/workflows/compose", json=spec).status_code == 201


def test_a_url_that_never_answers_holds_up_no_one_else(tenants: Tenants) -> None:
    hanging = (
        f"{TOOL}doc: {{$include: 'http://127.0.0.1:{tenants.silent}/never'}}\n"
        "inputs: []\noutputs: []\n"
    )
    slow: dict[str, httpx.Response] = {}

    def register_hanging() -> None:
        with tenants.client(tenants.ann) as ann:
            slow["answer"] = ann.post(
                "/api/v1/workflows", data={"content": hanging, "project": "alpha"}
            )

    thread = threading.Thread(target=register_hanging)
    thread.start()
    time.sleep(0.7)  # ann's upload now waits on the silent socket
    with tenants.client(tenants.bob) as bob:
        started = time.monotonic()
        made = bob.post(
            "/api/v1/workflows",
            data={"content": TOOL + "inputs: []\noutputs: []\n", "project": "beta"},
        )
        took = time.monotonic() - started
    assert made.status_code == 201 and took < 2.0, (made.text, took)
    thread.join(20)
    answer = slow["answer"]
    assert answer.status_code == 400 and "no answer within 3 s" in answer.text


def test_run_inputs_name_only_uploads_and_input_roots(tenants: Tenants) -> None:
    live = tenants.live
    with tenants.client(tenants.ann) as ann:
        any_input = TOOL + "inputs:\n  x: Any\noutputs: []\n"
        workflow = ann.post("/api/v1/workflows", data={"content": any_input, "project": "alpha"})
        assert workflow.status_code == 201, workflow.text
        hostname = {"class": "File", "location": "file:///etc/hostname"}
        probes = [
            hostname,
            {"record": {"nested": [hostname]}},
            {"class": "File", "contents": "literal", "secondaryFiles": [hostname]},
            {"class": "Directory", "basename": "d", "listing": [hostname]},
            {"class": "File", "path": str(live.settings.home / "twin.db")},
            {"$include": "/etc/passwd"},
        ]
        for value in probes:
            answer = ann.post(
                "/api/v1/runs",
                json={"workflow": workflow.json()["id"], "inputs": {"x": value}},
            )
            assert answer.status_code == 400, (value, answer.text)
            reveals_nothing(
                answer.text.replace("/etc/hostname", "").replace("/etc/passwd", ""), live
            )


def test_files_built_by_expressions_at_run_time_are_not_staged(tenants: Tenants) -> None:
    live = tenants.live
    target = (live.settings.home / "twin.db").as_uri()
    built = f'{{"class": "File", "location": "{target}", "basename": "db"}}'
    document = (
        TOOL + "requirements:\n  InlineJavascriptRequirement: {}\n"
        "inputs:\n  f:\n    type: File\n    inputBinding: {position: 1}\n"
        f"    secondaryFiles:\n      - pattern: '$({built})'\n        required: false\n"
        "arguments: ['$(inputs.f.secondaryFiles.length ? inputs.f.secondaryFiles[0].path"
        " : inputs.f.path)']\n"
        "outputs:\n  out: {type: stdout}\nstdout: out.txt\n"
    )
    with tenants.client(tenants.ann) as ann:
        made = ann.post("/api/v1/workflows", data={"content": document, "project": "alpha"})
        assert made.status_code == 201, made.text  # nothing to see before it runs
        upload = ann.post(
            "/api/v1/uploads", data={"project": "alpha"}, files={"file": ("in.txt", b"mine\n")}
        )
        assert upload.status_code == 201, upload.text
        inputs = {"f": {"class": "File", "location": upload.json()["location"]}}
        run = ann.post("/api/v1/runs", json={"workflow": made.json()["id"], "inputs": inputs})
        assert run.status_code == 201, run.text
        done = wait_run(ann, run.json()["id"])
        assert done["state"] == "failed", done
        assert "not found or not allowed" in done["steps"][0]["message"]
        assert ann.get(f"/api/v1/runs/{done['id']}/outputs").json()["outputs"] == {}
        reveals_nothing(str(done), live)


def post_yaml(client: httpx.Client, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text.encode(), headers={"content-type": "application/yaml"})


def test_triggers_give_their_runs_only_the_files_their_events_reported(
    tenants: Tenants, tmp_path: Path
) -> None:
    with tenants.client(tenants.bob) as bob:
        cat = bob.post("/api/v1/workflows", data={"content": CAT, "project": "beta", "name": "cat"})
        assert cat.status_code == 201, cat.text
        outside = post_yaml(
            bob,
            "/api/v1/sources?project=beta",
            "name: etc\nkind: folder\npath: /etc\nmode: poll\n",
        )
        assert outside.status_code == 403, outside.text
        assert "TWIN_WATCH_ROOTS" in outside.json()["error"]["hint"]
        escape = tenants.watched / "escape"
        escape.symlink_to("/etc")
        linked = post_yaml(
            bob, "/api/v1/sources?project=beta", f"name: etc2\nkind: folder\npath: {escape}\n"
        )
        assert linked.status_code == 403  # a link out of the watch roots is not inside them
        inbox = tenants.watched / "inbox"
        inbox.mkdir()
        made = post_yaml(
            bob,
            "/api/v1/sources?project=beta",
            f"name: inbox\nkind: folder\npath: {inbox}\nmode: poll\ninterval: 0.1\nsettle: 0.1\n",
        )
        assert made.status_code == 201, made.text
        trig = post_yaml(
            bob,
            "/api/v1/triggers?project=beta",
            "name: cat-new\nsource: inbox\nworkflow: cat\ninputs: {f: $file}\n",
        )
        assert trig.status_code == 201, trig.text
        (inbox / "a.txt").write_text("reported by the folder\n")
        run_id = until(lambda: deliveries(bob, "cat-new", "run_id"))[0]
        run = wait_run(bob, run_id)
        assert run["state"] == "succeeded", run
        out = bob.get(f"/api/v1/runs/{run_id}/outputs").json()["outputs"]["out"]
        assert bob.get(out["download"]).text == "reported by the folder\n"

        assert post_yaml(bob, "/api/v1/sources?project=beta", "name: hook\nkind: webhook\n")
        for name, inputs in (
            ("by-key", "{f: $file}"),  # the event's key names a server file
            ("literal", "{f: {class: File, location: 'file:///etc/hostname'}}"),
        ):
            trig = post_yaml(
                bob,
                "/api/v1/triggers?project=beta",
                f"name: {name}\nsource: hook\nworkflow: cat\ninputs: {inputs}\n"
                "retries: {attempts: 1}\n",
            )
            assert trig.status_code == 201, trig.text
        sent = bob.post("/api/v1/events/hook?project=beta", json={"key": "/etc/hostname"})
        assert sent.status_code == 202, sent.text
        for name in ("by-key", "literal"):
            error = until(lambda name=name: deliveries(bob, name, "error"))[0]
            assert "not found or not allowed" in error, error
            assert not deliveries(bob, name, "run_id")


def deliveries(client: httpx.Client, trigger: str, field: str) -> list:
    items = client.get("/api/v1/events", params={"limit": 200}).json()["items"]
    return [
        d[field] for e in items for d in e["deliveries"] if d["trigger"] == trigger and d[field]
    ]


def test_legitimate_uploads_register_and_run(tenants: Tenants) -> None:
    main = (
        "cwlVersion: v1.2\nclass: Workflow\ndoc: {$include: README.txt}\n"
        "inputs:\n  f: {type: File, default: {class: File, location: data/in.txt}}\n"
        "outputs:\n  out: {type: File, outputSource: cat/out}\n"
        "steps:\n  cat:\n    run: tools/cat.cwl\n    in: {f: f}\n    out: [out]\n"
    )
    upload = tar_gz(
        {
            "main.cwl": main.encode(),
            "tools/cat.cwl": CAT.encode(),
            "README.txt": b"reads its own data",
            "data/in.txt": b"data in the archive\n",
        }
    )
    with tenants.client(tenants.ann) as ann:
        made = ann.post(
            "/api/v1/workflows", data={"project": "alpha"}, files={"file": ("w.tar.gz", upload)}
        )
        assert made.status_code == 201, made.text
        workflow = made.json()
        assert workflow["doc"] == "reads its own data"
        assert workflow["inputs"][0]["default"]["location"] == "data/in.txt"
        reveals_nothing(made.text, tenants.live)
        run = ann.post("/api/v1/runs", json={"workflow": workflow["id"], "inputs": {}}).json()
        done = wait_run(ann, run["id"])
        assert done["state"] == "succeeded", done
        out = ann.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["out"]
        assert ann.get(out["download"]).text == "data in the archive\n"


def test_a_crafted_archive_is_a_clear_400(tenants: Tenants) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("main.cwl", (TOOL + "inputs: []\noutputs: []\n") * 10)
    data = buffer.getvalue()
    at = data.index(b"PK\x01\x02")  # the central directory lies about the member's size
    crafted = data[: at + 24] + struct.pack("<I", 7) + data[at + 28 :]
    with tenants.client(tenants.ann) as ann:
        answer = ann.post(
            "/api/v1/workflows", data={"project": "alpha"}, files={"file": ("w.zip", crafted)}
        )
    assert answer.status_code == 400, answer.text
    assert "damaged" in answer.json()["error"]["message"] or "lies" in answer.text

"""Documents uploaded to the server load confined to their upload; inputs name only
allowed files; archives unpack within bounds (issue 12, items 2, 3, 4 and 15).

Everything here is real: the registry unpacks and loads with cwltool, files and links on
disk, HTTP servers on loopback sockets, the run process started as a subprocess."""

from __future__ import annotations

import http.server
import io
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from twinengine.core import InvalidDocumentError, InvalidInputError, NotFoundError, Settings
from twinengine.workflows.archive import MAX_MEMBERS, unpack
from twinengine.workflows.fetching import confinement_for
from twinengine.workflows.inputs import UploadStore, resolve_inputs
from twinengine.workflows.loading import load_document
from twinengine.workflows.native.document import NotNative, step_document
from twinengine.workflows.registry import WorkflowRegistry

PASSWD_LINE = "root:x:0:0"
TOOL = "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: cat\n"


def settings_for(home: Path, **overrides: object) -> Settings:
    base = Settings(home=home, database_url=f"sqlite:///{home / 'twin.db'}", store=str(home))
    return replace(base, **overrides)


@pytest.fixture
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the server shares (input_roots), outside its home; with a link to /etc."""
    shared = tmp_path_factory.mktemp("shared")
    (shared / "escape").symlink_to("/etc")
    return shared


@pytest.fixture
def registry(twin_home: Path) -> WorkflowRegistry:
    return WorkflowRegistry(settings=settings_for(twin_home))


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def messages(result: dict) -> str:
    return " ".join(e["message"] + str(e.get("file")) for e in result["errors"])


# -- item 2: what a document may fetch -------------------------------------------------------
OUTSIDE_REFERENCES = {
    "$include passwd": "doc: {$include: /etc/passwd}\ninputs: []\noutputs: []\n",
    "$include environ": "doc: {$include: /proc/self/environ}\ninputs: []\noutputs: []\n",
    "$include file url": "doc: {$include: 'file:///etc/passwd'}\ninputs: []\noutputs: []\n",
    "$include ..": "doc: {$include: ../../../../../../../../etc/passwd}\ninputs: []\noutputs: []\n",
    "$include home": "doc: {$include: ../../twin.db}\ninputs: []\noutputs: []\n",
    "$import": "inputs: {$import: /etc/passwd}\noutputs: []\n",
    "$mixin": (
        "inputs: []\noutputs: []\nrequirements:\n"
        "  - {$mixin: /etc/passwd, class: EnvVarRequirement}\n"
    ),
    "schemadef $import": (
        "inputs: []\noutputs: []\nrequirements:\n  SchemaDefRequirement:\n"
        "    types:\n      - $import: /etc/passwd\n"
    ),
}


@pytest.mark.parametrize("body", OUTSIDE_REFERENCES.values(), ids=OUTSIDE_REFERENCES.keys())
def test_references_out_of_the_upload_are_refused_and_reveal_nothing(
    registry: WorkflowRegistry, body: str
) -> None:
    result = registry.validate((TOOL + body).encode(), "w.cwl")
    assert result["valid"] is False
    text = messages(result)
    assert "not found or not allowed" in text, text
    assert PASSWD_LINE not in text and "PATH=" not in text
    assert str(registry.settings.home) not in text and "/etc/" not in text


def test_run_and_schemas_out_of_the_upload_are_refused(registry: WorkflowRegistry) -> None:
    workflow = (
        "cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\n"
        "steps:\n  a:\n    run: {ref}\n    in: []\n    out: []\n"
    )
    answers = []
    for ref in ("file:///etc/passwd", "/etc/passwd", "/etc/no-such-file", "../../x.cwl"):
        result = registry.validate(workflow.format(ref=ref).encode(), "w.cwl")
        assert result["valid"] is False
        text = messages(result)
        assert PASSWD_LINE not in text and "/etc/" not in text
        assert str(registry.settings.home) not in text
        answers.append([e["message"] for e in result["errors"]])
    # an existing and a missing file answer alike: nothing tells which paths exist
    assert answers[1] == answers[2]
    schemas = TOOL + "$schemas: [/etc/passwd]\ninputs: []\noutputs: []\n"
    assert registry.validate(schemas.encode(), "w.cwl")["valid"] is True  # ignored, not read


def test_a_link_inside_the_upload_folder_is_not_followed(tmp_path: Path, twin_home: Path) -> None:
    folder = tmp_path / "upload"
    folder.mkdir()
    (folder / "doc.txt").symlink_to("/etc/passwd")
    (folder / "main.cwl").write_text(TOOL + "doc: {$include: doc.txt}\ninputs: []\noutputs: []\n")
    confinement = confinement_for(folder, settings_for(twin_home))
    with pytest.raises(InvalidDocumentError) as caught:
        load_document(str(folder / "main.cwl"), confinement)
    assert "doc.txt: not found or not allowed" in caught.value.message
    assert PASSWD_LINE not in str(caught.value)
    # the same document on one's own machine (no confinement) still reads what it names
    assert PASSWD_LINE in load_document(str(folder / "main.cwl")).tool["doc"]


def test_in_upload_references_still_work(registry: WorkflowRegistry) -> None:
    main = (
        b"cwlVersion: v1.2\nclass: Workflow\ndoc: {$include: doc.txt}\n"
        b"requirements:\n  SchemaDefRequirement:\n    types:\n      - $import: types.yml\n"
        b"inputs:\n  f:\n    type: File\n    default: {class: File, location: data/a.txt}\n"
        b"outputs:\n  out: {type: File, outputSource: a/out}\n"
        b"steps:\n  a:\n    run: tools/cat.cwl\n    in: {f: f}\n    out: [out]\n"
    )
    tool = (
        TOOL + "requirements:\n  - $mixin: env.yml\n  - class: InitialWorkDirRequirement\n"
        "    listing:\n      - {class: File, location: ../data/a.txt}\n"
        "inputs:\n  f: {type: File, inputBinding: {position: 1}}\noutputs:\n  out: stdout\n"
    ).encode()
    members = {
        "main.cwl": main,
        "tools/cat.cwl": tool,
        "tools/env.yml": b"class: EnvVarRequirement\nenvDef: {A: b}\n",
        "doc.txt": b"documented in the archive",
        "types.yml": b"name: Rec\ntype: record\nfields:\n  a: string\n",
        "data/a.txt": b"hello\n",
    }
    result = registry.validate(tar_gz(members), "w.tar.gz")
    assert result["valid"] is True, result["errors"]
    assert result["doc"] == "documented in the archive"
    # the interface names the default by its place in the upload, not a server path
    assert result["inputs"][0]["default"]["location"] == "data/a.txt"


class Recorder(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        Recorder.hits.append(self.path)
        body = b"fetched from the allowed host"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    Recorder.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_urls_are_fetched_only_from_allowed_hosts(twin_home: Path, recorder: int) -> None:
    text = (
        f"{TOOL}doc: {{$include: 'http://127.0.0.1:{recorder}/secret'}}\ninputs: []\noutputs: []\n"
    )
    closed = WorkflowRegistry(settings=settings_for(twin_home))
    refused = closed.validate(text.encode(), "w.cwl")
    assert refused["valid"] is False and "fetch_hosts" in messages(refused)
    assert Recorder.hits == []  # refused without even connecting
    opened = WorkflowRegistry(
        settings=settings_for(twin_home, fetch_hosts=(f"127.0.0.1:{recorder}",))
    )
    allowed = opened.validate(text.encode(), "w.cwl")
    assert allowed["valid"] is True and allowed["doc"] == "fetched from the allowed host"
    assert Recorder.hits == ["/secret"]  # once: fetched before the load, served from memory


def test_a_url_that_never_answers_times_out_outside_the_lock(twin_home: Path) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections, never answers
    port = silent.getsockname()[1]
    settings = settings_for(twin_home, fetch_hosts=(f"127.0.0.1:{port}",), fetch_timeout=3)
    registry = WorkflowRegistry(settings=settings)
    hanging = f"{TOOL}doc: {{$include: 'http://127.0.0.1:{port}/x'}}\ninputs: []\noutputs: []\n"
    registry.validate((TOOL + "inputs: []\noutputs: []\n").encode(), "warm.cwl")  # schemas
    outcome: dict[str, object] = {}
    slow = threading.Thread(
        target=lambda: outcome.update(registry.validate(hanging.encode(), "w.cwl"))
    )
    try:
        slow.start()
        threading.Event().wait(0.5)  # the slow one is waiting on the socket now
        started = os.times().elapsed
        good = registry.validate((TOOL + "inputs: []\noutputs: []\n").encode(), "o.cwl")
        took = os.times().elapsed - started
        assert good["valid"] is True and took < 2, took  # not held up by the other load
        slow.join(15)
        assert outcome["valid"] is False and "no answer within 3 s" in messages(outcome)
    finally:
        silent.close()


def test_a_document_that_aliases_expand_to_millions_is_refused_at_once(
    registry: WorkflowRegistry,
) -> None:
    text = TOOL + "inputs: []\noutputs: []\nhints:\n  - class: EnvVarRequirement\n"
    text += "    envDef: {A: &a0 x}\n"
    for level in range(1, 9):  # 9^8: 43 million values in 500 bytes
        text += f"x{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n"
    started = os.times().elapsed
    result = registry.validate(text.encode(), "w.cwl")
    assert os.times().elapsed - started < 2
    assert result["valid"] is False and "expands to more than" in messages(result)


# -- item 4: File and Directory literals in documents ------------------------------------------
def test_file_literals_outside_the_upload_and_the_input_roots_are_refused(
    twin_home: Path, shared_root: Path
) -> None:
    shared = shared_root
    (shared / "ref.txt").write_text("reference data")
    registry = WorkflowRegistry(settings=settings_for(twin_home, input_roots=(shared, twin_home)))
    cases = {
        "default": "inputs:\n  f:\n    type: File\n    default: {class: File, location: %s}\n",
        "iwd": (
            "requirements:\n  InitialWorkDirRequirement:\n    listing:\n"
            "      - {class: File, location: '%s'}\ninputs: []\n"
        ),
        "secondary": (
            "inputs:\n  f:\n    type: File\n    default:\n      class: File\n"
            "      location: data.txt\n      secondaryFiles: [{class: File, location: '%s'}]\n"
        ),
        "directory listing": (
            "inputs:\n  d:\n    type: Directory\n    default:\n      class: Directory\n"
            "      basename: d\n      listing: [{class: File, location: '%s'}]\n"
        ),
        "record": (
            "inputs:\n  r:\n    type:\n      type: record\n      fields:\n        f: File\n"
            "    default: {f: {class: File, location: '%s'}}\n"
        ),
    }
    workflow_step_default = (
        "cwlVersion: v1.2\nclass: Workflow\ninputs: []\noutputs: []\nsteps:\n  a:\n"
        "    run: t.cwl\n    in:\n      f: {default: {class: File, location: '%s'}}\n"
        "    out: []\n"
    )
    tool = TOOL + "inputs:\n  f: File\noutputs: []\n"
    forbidden = ["/etc/hostname", "file:///etc/hostname", str(shared / "escape/hostname")]
    forbidden += [str(twin_home / "twin.db"), "../../x.txt"]
    for target in forbidden:
        for label, body in cases.items():
            text = TOOL + body % target + ("outputs: []\n" if "outputs" not in body else "")
            upload = tar_gz({"main.cwl": text.encode(), "data.txt": b"x"})
            result = registry.validate(upload, "w.tar.gz")
            assert result["valid"] is False, (label, target)
            text = messages(result)
            assert "not found or not allowed" in text or "undefined reference" in text, text
            assert str(twin_home) not in messages(result)
        upload = tar_gz(
            {"main.cwl": (workflow_step_default % target).encode(), "t.cwl": tool.encode()}
        )
        assert registry.validate(upload, "w.tar.gz")["valid"] is False, target
    for allowed in ("data.txt", str(shared / "ref.txt")):
        text = TOOL + cases["default"] % allowed + "outputs: []\n"
        result = registry.validate(tar_gz({"main.cwl": text.encode(), "data.txt": b"x"}), "w.tgz")
        assert result["valid"] is True, (allowed, result["errors"])


def test_image_loads_from_files_or_urls_are_refused(registry: WorkflowRegistry) -> None:
    for key in ("dockerLoad: /etc/shadow", "dockerImport: 'http://127.0.0.1:9/i.tar'"):
        text = f"{TOOL}hints:\n  DockerRequirement: {{dockerImageId: x, {key}}}\n"
        result = registry.validate((text + "inputs: []\noutputs: []\n").encode(), "w.cwl")
        assert result["valid"] is False and "not allowed" in messages(result)


# -- the registered document loads confined again when it runs --------------------------------
def test_a_registered_document_is_confined_when_it_runs(
    registry: WorkflowRegistry, twin_home: Path, tmp_path: Path
) -> None:
    text = TOOL + "doc: {$include: doc.txt}\ninputs: []\noutputs: []\n"
    workflow = registry.register(
        tar_gz({"main.cwl": text.encode(), "doc.txt": b"ok"}), "w.tar.gz", project="default"
    )
    main = Path(registry.row(workflow["id"])["folder"]) / "main.cwl"
    job = tmp_path / "job.json"
    job.write_text("{}")

    def run() -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "twinengine.workflows.cwlrunner", "--no-native"]
        command += ["--outdir", str(tmp_path / "out"), str(main), str(job)]
        env = {**os.environ, "TWIN_HOME": str(twin_home)}
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)

    assert run().returncode == 0
    main.write_text(text.replace("doc.txt", "/etc/passwd"))  # changed after registration
    tampered = run()
    assert tampered.returncode != 0
    assert "not found or not allowed" in tampered.stderr and PASSWD_LINE not in tampered.stderr
    main.write_text(text)
    job.write_text(json.dumps({"x": {"$include": "/etc/passwd"}}))  # a directive as an input
    assert PASSWD_LINE not in run().stderr


def test_the_native_loader_does_not_follow_a_run_out_of_a_registered_folder(
    twin_home: Path, tmp_path: Path
) -> None:
    folder = twin_home / "workflows" / "w1"
    folder.mkdir(parents=True)
    (folder / "tools").mkdir()
    main = folder / "main.cwl"
    assert step_document(main, "tools/t.cwl", "step") == folder.resolve() / "tools/t.cwl"
    for ref in ("../w2/t.cwl", "/etc/passwd", "file:///etc/passwd"):
        with pytest.raises(NotNative):
            step_document(main, ref, "step")
    (folder / "link.cwl").symlink_to(tmp_path / "elsewhere.cwl")
    with pytest.raises(NotNative):
        step_document(main, "link.cwl", "step")
    # one's own documents outside the registry: unchanged
    assert step_document(tmp_path / "a" / "main.cwl", "../t.cwl", "s") == tmp_path / "t.cwl"


# -- item 4: run inputs -------------------------------------------------------------------------
@pytest.fixture
def uploads(twin_home: Path, shared_root: Path) -> UploadStore:
    (shared_root / "ok.txt").write_text("shared data")
    return UploadStore(settings=settings_for(twin_home, input_roots=(shared_root,)))


def test_every_file_object_in_run_inputs_is_checked(
    uploads: UploadStore, shared_root: Path, tmp_path: Path
) -> None:
    shared = shared_root
    interface = [{"id": "x", "type": "Any", "optional": False}]
    ok = {"class": "File", "location": str(shared / "ok.txt")}
    bad_targets = [
        "/etc/hostname",
        "file:///etc/hostname",
        str(shared / "escape/hostname"),
        str(shared / "../shared/../../etc/hostname"),
        "http://127.0.0.1:9/x",
        str(uploads.settings.home / "twin.db"),
    ]
    for target in bad_targets:
        bad = {"class": "File", "location": target}
        for shape in (
            bad,
            [ok, bad],
            {"record": {"deeper": [bad]}},
            {"class": "File", "contents": "literal", "secondaryFiles": [bad]},
            {**ok, "secondaryFiles": [bad]},
            {"class": "Directory", "basename": "d", "listing": [bad]},
            {"class": "Directory", "location": target},
        ):
            with pytest.raises(InvalidInputError) as caught:
                resolve_inputs(interface, {"x": shape}, project="p", uploads_store=uploads)
            assert "not found or not allowed" in caught.value.message, (target, shape)
    job = resolve_inputs(interface, {"x": {"r": [ok]}}, project="p", uploads_store=uploads)
    assert job["x"]["r"][0]["path"] == str((shared / "ok.txt").resolve())
    mine = uploads.save(io.BytesIO(b"uploaded"), "u.txt", project="p")
    job = resolve_inputs(
        interface,
        {"x": {"class": "File", "location": mine["location"], "secondaryFiles": [ok]}},
        project="p",
        uploads_store=uploads,
    )
    assert Path(job["x"]["path"]).read_bytes() == b"uploaded"
    with pytest.raises(NotFoundError, match="no upload"):  # another project's upload
        theirs = {"class": "File", "location": mine["location"]}
        resolve_inputs(interface, {"x": theirs}, project="q", uploads_store=uploads)
    with pytest.raises(InvalidInputError, match="not found or not allowed"):  # by its path
        by_path = {"class": "File", "location": job["x"]["path"]}
        resolve_inputs(interface, {"x": by_path}, project="q", uploads_store=uploads)
    for directive in ({"$include": "/etc/passwd"}, {"a": [{"$import": "x.yml"}]}):
        with pytest.raises(InvalidInputError, match="directive"):
            resolve_inputs(interface, {"x": directive}, project="p", uploads_store=uploads)
    with pytest.raises(InvalidInputError, match="not a file name"):
        bad_name = {**ok, "basename": "../../escape.txt"}
        resolve_inputs(interface, {"x": bad_name}, project="p", uploads_store=uploads)
    # a trigger's reported file is allowed for that trigger's run only
    reported = tmp_path / "incoming" / "new.txt"
    reported.parent.mkdir()
    reported.write_text("event data")
    given = {"x": {"class": "File", "path": str(reported)}}
    with pytest.raises(InvalidInputError):
        resolve_inputs(interface, given, project="p", uploads_store=uploads)
    job = resolve_inputs(
        interface, given, project="p", uploads_store=uploads, extra_roots=(reported,)
    )
    assert job["x"]["path"] == str(reported.resolve())


# -- item 15: archives ----------------------------------------------------------------------------
def zip_bytes(members: dict[str, bytes], mode: int | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def lie_about_size(data: bytes, size: int) -> bytes:
    """The zip ``data`` with its first central-directory entry's size set to ``size``."""
    at = data.index(b"PK\x01\x02")
    return data[: at + 24] + struct.pack("<I", size) + data[at + 28 :]


def tar_with(kind: bytes, name: str = "x", linkname: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = linkname
        tar.addfile(info)
    return buffer.getvalue()


def test_every_malformed_archive_is_a_clear_refusal(tmp_path: Path) -> None:
    cwl = b"cwlVersion: v1.2\n" * 20
    zeros = b"\0" * (4 * 1024 * 1024)
    many = tar_gz({f"f{i}.txt": b"" for i in range(MAX_MEMBERS + 1)})
    cases = {
        "zip shorter than it says": ("a.zip", lie_about_size(zip_bytes({"a.cwl": cwl}), 5)),
        "zip longer than it says": ("a.zip", lie_about_size(zip_bytes({"a.cwl": cwl}), 10**6)),
        "zip bomb": ("a.zip", zip_bytes({"a.cwl": zeros})),
        "zip bomb lying": ("a.zip", lie_about_size(zip_bytes({"a.cwl": zeros}), 10)),
        "tar.gz bomb": ("a.tar.gz", tar_gz({"a.cwl": zeros})),
        "too many members": ("a.tar.gz", many),
        "zip symlink": ("a.zip", zip_bytes({"a.cwl": b"/etc/passwd"}, stat.S_IFLNK | 0o777)),
        "zip device": ("a.zip", zip_bytes({"a.cwl": b""}, stat.S_IFCHR | 0o666)),
        "zip absolute": ("a.zip", zip_bytes({"/etc/a.cwl": cwl})),
        "zip climbing": ("a.zip", zip_bytes({"a/../../a.cwl": cwl})),
        "zip clash": ("a.zip", zip_bytes({"a": cwl, "a/b.cwl": cwl})),
        "zip truncated": ("a.zip", zip_bytes({"a.cwl": cwl})[:-30]),
        "tar symlink": ("a.tar", tar_with(tarfile.SYMTYPE, "a.cwl", "/etc/passwd")),
        "tar hardlink": ("a.tar", tar_with(tarfile.LNKTYPE, "a.cwl", "/etc/passwd")),
        "tar device": ("a.tar", tar_with(tarfile.CHRTYPE)),
        "tar fifo": ("a.tar", tar_with(tarfile.FIFOTYPE)),
        "tar absolute": ("a.tar.gz", tar_gz({"/etc/a.cwl": cwl})),
        "tar climbing": ("a.tar.gz", tar_gz({"../a.cwl": cwl})),
        "tar truncated": ("a.tar.gz", tar_gz({"a.cwl": cwl * 100})[:-40]),
        "not an archive": ("a.tar.xz", b"plain text, not xz"),
    }
    for label, (name, data) in cases.items():
        target = tmp_path / label.replace(" ", "-")
        with pytest.raises(InvalidInputError) as caught:
            unpack(data, name, target, max_bytes=1024 * 1024)
        assert caught.value.message, label
    assert not (tmp_path / "a.cwl").exists() and not Path("/etc/a.cwl").exists()
    names = unpack(zip_bytes({"d/a.cwl": cwl, "b.cwl": cwl}), "ok.zip", tmp_path / "ok", 10**6)
    assert sorted(names) == ["b.cwl", "d/a.cwl"]
    assert (tmp_path / "ok/d/a.cwl").read_bytes() == cwl

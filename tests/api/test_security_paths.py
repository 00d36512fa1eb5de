"""No response shows where the server keeps its files, and no download leaves a run's
output folder: run records, outputs, logs, every PROV export and error messages are
checked for the server's home; links and pipes a step leaves are never served."""

from __future__ import annotations

import io
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Live, start_server, wait_run

COPY = b"""cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
arguments: ["echo reading $(inputs.f.path) in $PWD >&2; cat $(inputs.f.path) > copy.txt"]
inputs: {f: File}
stdout: out.txt
outputs:
  copy: {type: File, outputBinding: {glob: copy.txt}}
  out: {type: stdout}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_server(tmp_path_factory.mktemp("paths"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def run(live: Live) -> dict[str, Any]:
    with live.client() as client:
        workflow = client.post("/api/v1/workflows", files={"file": ("copy.cwl", COPY)}).json()
        upload = client.post("/api/v1/uploads", files={"file": ("in.txt", b"hello\n")}).json()
        made = client.post(
            "/api/v1/runs",
            json={
                "workflow": workflow["id"],
                "inputs": {"f": {"class": "File", "location": upload["location"]}},
            },
        ).json()
        done = wait_run(client, made["id"])
    assert done["state"] == "succeeded", done
    return done


def _home_is_not_in(live: Live, text: str, where: str) -> None:
    home = str(live.settings.home)
    assert home not in text, f"{where} shows the server's home: {text[:500]}"
    assert "file://" not in text, f"{where} shows a server file URL: {text[:500]}"


def test_run_records_outputs_and_logs_name_no_server_path(live: Live, run: dict) -> None:
    with live.client() as client:
        for path in (
            f"/api/v1/runs/{run['id']}",
            "/api/v1/runs",
            f"/api/v1/runs/{run['id']}/outputs",
            f"/api/v1/runs/{run['id']}/logs",
            f"/api/v1/runs/{run['id']}/logs?stream=stdout",
            f"/api/v1/runs/{run['id']}/logs?follow=true",
        ):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            _home_is_not_in(live, answer.text, path)
        logs = client.get(f"/api/v1/runs/{run['id']}/logs").text
        assert "reading" in logs  # the step did print a path: it was rewritten
        outputs = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]
        copy = outputs["copy"]
        assert copy["location"] == copy["download"]
        assert copy.get("path", copy["download"]) == copy["download"]
        assert client.get(copy["download"]).content == b"hello\n"
        shown = client.get(f"/api/v1/runs/{run['id']}").json()
        assert all(not str(s.get("tool", "")).startswith("/") for s in shown["steps"])


def test_every_prov_export_names_no_server_path(live: Live, run: dict) -> None:
    with live.client() as client:
        for fmt in ("json", "provn", "xml", "ttl", "graph", "svg"):
            answer = client.get(f"/api/v1/runs/{run['id']}/prov", params={"format": fmt})
            assert answer.status_code == 200, (fmt, answer.text)
            _home_is_not_in(live, answer.text, fmt)
        crate = client.get(f"/api/v1/runs/{run['id']}/prov", params={"format": "rocrate"})
        assert crate.status_code == 200, crate.text
        with zipfile.ZipFile(io.BytesIO(crate.content)) as archive:
            for name in archive.namelist():
                text = archive.read(name).decode("utf-8", errors="replace")
                _home_is_not_in(live, text, f"crate member {name}")
        document = client.get("/api/v1/prov/documents", params={"run": run["id"]}).json()
        doc_id = document["items"][0]["id"]
        for path in (
            f"/api/v1/prov/documents/{doc_id}/elements",
            f"/api/v1/prov/documents/{doc_id}/relations",
            "/api/v1/prov/lineage?target=" + outputs_sha(client, run["id"]),
        ):
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.text)
            _home_is_not_in(live, answer.text, path)


def outputs_sha(client: Any, run_id: str) -> str:
    return client.get(f"/api/v1/runs/{run_id}/outputs").json()["outputs"]["copy"]["sha256"]


def test_error_messages_are_scrubbed_of_server_paths(live: Live, run: dict) -> None:
    workflow = Path(live.settings.home) / "workflows" / run["workflow_id"] / "copy.cwl"
    saved = workflow.read_bytes()
    workflow.unlink()  # the crate needs it: the error names where it was
    try:
        with live.client() as client:
            answer = client.get(f"/api/v1/runs/{run['id']}/prov", params={"format": "rocrate"})
        assert answer.status_code == 400, answer.text
        assert "no longer on disk" in answer.json()["error"]["message"]
        _home_is_not_in(live, answer.text, "the crate error")
        assert f"workflow:{run['workflow_id']}/copy.cwl" in answer.text
    finally:
        workflow.write_bytes(saved)


def test_links_and_pipes_in_the_output_folder_are_never_served(
    live: Live, run: dict, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("server secret\n")
    outdir = Path(live.app.state.twin.runs.get(run["id"])["outdir"])
    with live.client() as client:
        copy = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["copy"]
    folder = (outdir / copy["download"].split("/files/", 1)[1]).parent
    (folder / "shadow").symlink_to(secret)
    (outdir / "up").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(folder / "pipe")
    inside = folder.relative_to(outdir).as_posix()
    rel = "" if inside == "." else inside + "/"
    with live.client() as client:
        for path in (
            f"{rel}shadow",
            f"up/{secret.name}",
            f"{rel}pipe",
            f"{rel}../{rel}copy.txt",
        ):
            start = time.perf_counter()
            answer = client.get(f"/api/v1/runs/{run['id']}/files/{path}")
            assert answer.status_code == 404, (path, answer.text)
            assert "server secret" not in answer.text
            assert time.perf_counter() - start < 5  # a pipe is not opened for reading
        good = client.get(f"/api/v1/runs/{run['id']}/files/{rel}copy.txt")
        assert good.status_code == 200 and good.content == b"hello\n"
        assert good.headers["content-security-policy"] == "sandbox"
    # an output file turned into a pipe: listing the outputs must not wait on it forever
    listed = folder / "copy.txt"
    listed.rename(folder / "copy.saved")
    os.mkfifo(listed)
    try:
        with live.client() as client:
            answer = client.get(f"/api/v1/runs/{run['id']}/outputs", timeout=10)
            outputs = answer.json()["outputs"]
        assert "download" not in outputs["copy"] and "sha256" not in outputs["copy"]
    finally:
        listed.unlink()
        (folder / "copy.saved").rename(listed)


def test_log_routes_never_follow_a_link(live: Live, run: dict) -> None:
    step = live.app.state.twin.runs.steps(run["id"])[0]
    secret = Path(step["stderr_uri"]).parents[3] / "another-run-secret.txt"  # in the store
    secret.write_text("log secret\n")
    log = Path(step["stderr_uri"])
    saved = log.read_bytes()
    log.unlink()
    log.symlink_to(secret)
    try:
        with live.client() as client:
            for params in ({}, {"step": step["name"]}, {"follow": "true"}):
                answer = client.get(f"/api/v1/runs/{run['id']}/logs", params=params)
                assert answer.status_code == 200, answer.text
                assert "log secret" not in answer.text
    finally:
        log.unlink()
        log.write_bytes(saved)

"""A beta editor's folder source tries to read alpha's upload by having its watched folder
swapped for a link into ``$TWIN_HOME`` (the outside probe of issue 12, finding 1), on a
live server running as root (bubblewrap when it works here): the source stops (``down``,
with the reason) instead of announcing the home's files, a delivery whose event was
reported before the swap fails when it fires, and alpha's upload is never handed to the
sandbox group. A link inside the folder is never announced either (finding 14)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Live, start_server, wait_run
from tests.waiting import until
from twinengine.core import Settings
from twinengine.workflows.sandbox import probe

SECRET = "ALPHA-SECRET-4d1c"
CAT = (
    "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: cat\n"
    "inputs:\n  f: {type: File, inputBinding: {position: 1}}\n"
    "outputs:\n  out: {type: stdout}\nstdout: out.txt\n"
)
FOLDER = "kind: folder\nmode: {mode}\ninterval: 0.1\nsettle: 0.1\n"


def _sandbox() -> str:
    home = Path("/tmp/twin-sandbox-probe")
    works = probe("bwrap", Settings(home=home, database_url="", store="")) is None
    return "bwrap" if works else "none"


@dataclass
class Probe:
    live: Live
    watch: Path
    alpha: str  # alpha's editor token
    beta: str  # beta's editor token
    upload: Path  # alpha's uploaded secret file
    upload_id: str
    cat: str  # beta's cat workflow


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    watch = tmp_path_factory.mktemp("watch")
    live = start_server(tmp_path_factory.mktemp("home"), watch_roots=(watch,), sandbox=_sandbox())
    alpha = live.user_token("ann", {"alpha": "editor"})
    beta = live.user_token("bob", {"beta": "editor"})
    with live.client(alpha) as ann:
        made = ann.post(
            "/api/v1/uploads",
            data={"project": "alpha"},
            files={"file": ("alpha-secret.txt", SECRET.encode())},
        )
        assert made.status_code == 201, made.text
    upload_id = made.json()["id"]
    upload = live.settings.home / "uploads" / upload_id / "alpha-secret.txt"
    with live.client(beta) as bob:
        cat = bob.post("/api/v1/workflows", data={"content": CAT, "project": "beta", "name": "cat"})
        assert cat.status_code == 201, cat.text
    yield Probe(live, watch, alpha, beta, upload, upload_id, cat.json()["id"])
    live.stop()


def post_yaml(client: httpx.Client, path: str, text: str) -> httpx.Response:
    answer = client.post(path, content=text.encode(), headers={"content-type": "application/yaml"})
    assert answer.status_code == 201, answer.text
    return answer


def deliveries(client: httpx.Client, trigger: str) -> list[dict]:
    items = client.get("/api/v1/events", params={"limit": 200}).json()["items"]
    return [d for e in items for d in e["deliveries"] if d["trigger"] == trigger]


def keys(client: httpx.Client, source: str) -> set[str]:
    items = client.get("/api/v1/events", params={"source": source, "limit": 200}).json()
    return {e["key"] for e in items["items"]}


def untouched(probed: Probe) -> tuple[int, int, int]:
    info = os.stat(probed.upload)
    return info.st_uid, info.st_gid, info.st_mode


@pytest.mark.parametrize("mode", ["poll", "auto"])
def test_a_folder_swapped_for_a_link_into_the_home_stops_the_source(
    probed: Probe, mode: str
) -> None:
    before = untouched(probed)
    folder = probed.watch / f"swap-{mode}"
    folder.mkdir()
    name = f"swap-{mode}"
    with probed.live.client(probed.beta) as bob:
        post_yaml(
            bob,
            "/api/v1/sources?project=beta",
            f"name: {name}\npath: {folder}\n" + FOLDER.format(mode=mode),
        )
        post_yaml(
            bob,
            "/api/v1/triggers?project=beta",
            f"name: cat-{name}\nsource: {name}\nworkflow: cat\ninputs: {{f: $file}}\n",
        )
        (folder / "ok.txt").write_text("fine\n")  # the source works before the swap
        run_id = until(lambda: [d["run_id"] for d in deliveries(bob, f"cat-{name}") if d["run_id"]])
        assert wait_run(bob, run_id[0])["state"] == "succeeded"

        (folder / "ok.txt").unlink()
        folder.rmdir()
        folder.symlink_to(probed.upload.parent)  # the probe's swap, from the watch root
        shown = until(
            lambda: [s for s in [bob.get(f"/api/v1/sources/{name}?project=beta").json()]
                     if s["status"] == "down"]
        )[0]  # fmt: skip
        assert "outside the folders this server lets the source watch" in shown["error"]
        assert str(probed.live.settings.home) not in shown["error"]
        time.sleep(1.0)  # scans that would have run meanwhile
        assert keys(bob, name) == {"ok.txt"}  # alpha-secret.txt never announced
        assert len(deliveries(bob, f"cat-{name}")) == 1
    assert untouched(probed) == before


def test_an_event_reported_before_the_swap_cannot_reach_the_home_when_it_fires(
    probed: Probe,
) -> None:
    before = untouched(probed)
    folder = probed.watch / "late"
    folder.mkdir()
    with probed.live.client(probed.beta) as bob:
        post_yaml(
            bob,
            "/api/v1/sources?project=beta",
            f"name: late\npath: {folder}\n" + FOLDER.format(mode="poll"),
        )
        post_yaml(
            bob,
            "/api/v1/triggers?project=beta",
            "name: cat-late\nsource: late\nworkflow: cat\ninputs: {f: $file}\napproval: true\n"
            "retries: {attempts: 1}\n",
        )
        (folder / "alpha-secret.txt").write_text("decoy\n")  # the name of alpha's file
        waiting = until(
            lambda: [d for d in deliveries(bob, "cat-late") if d["state"] == "approval"]
        )
        folder.rename(probed.watch / "late-old")
        folder.symlink_to(probed.upload.parent)  # now the event's location leads into the home
        approved = bob.post(f"/api/v1/events/approvals/{waiting[0]['id']}")
        assert approved.status_code == 200, approved.text
        failed = until(lambda: [d for d in deliveries(bob, "cat-late") if d["state"] == "dead"])
        assert "not found or not allowed" in failed[0]["error"], failed
        assert failed[0]["run_id"] is None
        assert str(probed.live.settings.home) not in failed[0]["error"]
        runs = bob.get("/api/v1/runs", params={"project": "beta", "limit": 100}).json()
        for run in runs["items"]:
            outputs = bob.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]
            for out in outputs.values():
                assert SECRET not in bob.get(out["download"]).text
    assert untouched(probed) == before


def test_a_link_inside_the_folder_is_never_announced(probed: Probe, tmp_path: Path) -> None:
    secret = tmp_path / "secret.key"
    secret.write_text("x" * 44)
    folder = probed.watch / "links"
    folder.mkdir()
    (folder / "link-secret.txt").symlink_to(secret)
    (folder / "linked-dir").symlink_to(tmp_path)
    (folder / "real.txt").write_text("real\n")
    with probed.live.client(probed.beta) as bob:
        post_yaml(
            bob,
            "/api/v1/sources?project=beta",
            f"name: links\npath: {folder}\n" + FOLDER.format(mode="poll"),
        )
        until(lambda: keys(bob, "links"))
        time.sleep(0.5)
        events = bob.get("/api/v1/events", params={"source": "links"}).json()["items"]
    assert [(e["key"], e["body"]["size"]) for e in events] == [("real.txt", 5)]

"""Registering and validating a document with JavaScript on a real ``twin serve`` starts no
``node`` outside a sandbox (issue 12's outside probe, finding 13): cwltool's JSHint check
of expressions would start an unconfined ``node`` child of the server, as its user, and
keep it running."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import free_port

TWIN = str(Path(sys.executable).parent / "twin")
DOCUMENT = (
    "cwlVersion: v1.2\nclass: CommandLineTool\n"
    "requirements:\n  InlineJavascriptRequirement:\n"
    "    expressionLib: ['function twice(x) { return x + x; }']\n"
    "baseCommand: echo\ninputs:\n  m: string\n"
    "arguments: ['$(twice(inputs.m))', '${ return inputs.m.length; }']\n"
    "outputs: []\n"
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str, int]]:
    """A ``twin serve`` process (no sandbox needed here): URL, admin token, its pid."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_HOME=str(tmp_path / "home"), TWIN_SANDBOX="none")
    proc = subprocess.Popen(
        [TWIN, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    token = ""
    for line in proc.stdout:
        if "admin token" in line:
            token = line.split(": ")[-1].strip()
        if line.startswith("home "):
            break
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield url, token, proc.pid
    finally:
        proc.terminate()
        proc.wait(20)


def children(pid: int) -> list[str]:
    """The command names of the processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            name = (entry / "comm").read_text().strip()
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(name)
    return found


def test_registering_a_document_with_javascript_starts_no_node(
    server: tuple[str, str, int],
) -> None:
    url, token, pid = server
    assert token
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
        made = api.post("/api/v1/workflows", data={"content": DOCUMENT, "name": "js"})
        assert made.status_code == 201, made.text
        checked = api.post("/api/v1/workflows/validate", data={"content": DOCUMENT})
        assert checked.status_code == 200 and checked.json()["valid"] is True
        time.sleep(0.5)
        assert not [n for n in children(pid) if n in ("node", "nodejs")], children(pid)

"""``twin serve`` itself: it settles its sandbox as it starts and keeps its home private.

Started as a real process: with no sandbox that works (here: podman, not installed) it
refuses in one line naming the fix; bubblewrap off its ``PATH`` is found in
``/usr/bin``; with ``TWIN_SANDBOX=none`` it starts and warns;
with bubblewrap it reports it on ``/health``, makes a home it finds 0755 private (0700),
``twin.db`` 0600, and nothing it writes (an upload) is readable by others.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import free_port
from twinengine.core import get_settings
from twinengine.workflows.sandbox import probe

TWIN = str(Path(sys.executable).parent / "twin")


def _env(home: Path, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    return {**keep, "TWIN_HOME": str(home), **extra}


@contextmanager
def serving(home: Path, **extra: str) -> Iterator[tuple[str, str, subprocess.Popen]]:
    """A ``twin serve`` process: its URL, what it printed so far, the process."""
    port = free_port()
    proc = subprocess.Popen(
        [TWIN, "serve", "--port", str(port)],
        env=_env(home, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    printed = []
    assert proc.stdout is not None
    for line in proc.stdout:
        printed.append(line)
        if line.startswith("home "):
            break
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield url, "".join(printed), proc
    finally:
        proc.terminate()
        proc.wait(20)


@pytest.mark.skipif(shutil.which("podman") is not None, reason="podman is installed here")
def test_without_a_working_sandbox_it_refuses_in_one_line(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # a PATH with TwinEngine but neither bwrap nor podman
    bare.mkdir()
    done = subprocess.run(
        [TWIN, "serve", "--port", str(free_port())],
        env={"PATH": str(bare), "TWIN_HOME": str(tmp_path / "home"), "HOME": str(tmp_path),
             "TWIN_SANDBOX": "podman"},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "podman was not found on PATH nor in /usr/bin" in lines[0], lines[0]
    assert "apt-get install podman" in lines[0] and "TWIN_SANDBOX=none" in lines[0]
    assert "not installed" not in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(
    probe("bwrap", get_settings()) is not None or not Path("/usr/bin/bwrap").exists(),
    reason="bubblewrap in /usr/bin cannot start here",
)
def test_bwrap_off_the_path_is_found_in_usr_bin(tmp_path: Path) -> None:
    bare = tmp_path / "bin"  # the server's PATH lacks /usr/bin (a service unit's)
    bare.mkdir()
    with serving(tmp_path / "home", PATH=str(bare)) as (url, printed, _proc):
        assert httpx.get(f"{url}/health").json()["sandbox"] == "bwrap", printed


def test_sandbox_none_starts_and_says_so(tmp_path: Path) -> None:
    with serving(tmp_path / "home", TWIN_SANDBOX="none") as (url, _printed, proc):
        assert httpx.get(f"{url}/health").json()["sandbox"] == "none"
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "UNCONFINED" in err


@pytest.mark.skipif(
    probe("bwrap", get_settings()) is not None, reason="bubblewrap cannot start here"
)
def test_a_sandboxed_server_keeps_its_home_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    (home / "twin.db").touch(mode=0o644)
    os.chmod(home / "twin.db", 0o644)
    with serving(home) as (url, printed, _proc):
        health = httpx.get(f"{url}/health").json()
        assert health["sandbox"] == "bwrap", printed
        token = next(line.split(": ")[-1].strip() for line in printed.splitlines()
                     if "admin token" in line)  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"}
        upload = httpx.post(
            f"{url}/api/v1/uploads", headers=headers, files={"file": ("data.txt", b"private")}
        )
        assert upload.status_code == 201, upload.text
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for name in ("twin.db", "twin.db-wal", "twin.db-shm"):
        if (home / name).exists():
            assert stat.S_IMODE((home / name).stat().st_mode) == 0o600, name
    written = [p for p in home.rglob("*") if p.is_file() and not p.is_symlink()]
    assert any(p.read_bytes() == b"private" for p in written)
    readable = [p for p in written if p.stat().st_mode & 0o007]
    assert not readable, readable

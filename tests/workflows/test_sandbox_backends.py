"""The sandbox settings and backends that need no running sandbox to check.

The ``sandbox`` and ``sandbox_user`` settings refuse what they cannot mean; a sandbox
that does not work makes ``twin serve``'s choice refuse in one line naming the fix; the
podman backend turns the same mount plan into its command line (podman is not installed
on the development machine, so its containers are not started here).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import twinengine.core
from twinengine.core import get_settings
from twinengine.core.errors import ConfigError
from twinengine.workflows.sandbox import (
    Mount,
    SandboxPolicy,
    SandboxUnavailableError,
    SandboxUser,
    open_sandbox,
    server_sandbox,
)


def test_the_settings_refuse_what_they_cannot_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_SANDBOX", "chroot")
    twinengine.core.reset()
    with pytest.raises(ConfigError, match="unknown sandbox 'chroot'"):
        get_settings()
    monkeypatch.setenv("TWIN_SANDBOX", "BWRAP")
    twinengine.core.reset()
    assert get_settings().sandbox == "bwrap"
    assert SandboxUser.lookup("nobody") == SandboxUser(65534, 65534)
    assert SandboxUser.lookup("1234:5678") == SandboxUser(1234, 5678)
    for bad in ("root", "0", "no-such-account-x", "12:0"):
        with pytest.raises(ConfigError):
            SandboxUser.lookup(bad)


@pytest.mark.skipif(shutil.which("podman") is not None, reason="podman is installed here")
def test_a_required_sandbox_that_does_not_work_is_refused_naming_the_fix() -> None:
    settings = replace(get_settings(), sandbox="podman")
    with pytest.raises(SandboxUnavailableError) as caught:
        server_sandbox(settings)
    message = str(caught.value)
    assert "podman is not installed" in message and "apt-get install podman" in message
    assert "\n" not in caught.value.message
    assert server_sandbox(replace(settings, sandbox="none")).name == "none"


def test_podman_runs_the_same_tree_as_the_sandbox_user(tmp_path: Path) -> None:
    box = open_sandbox("podman", get_settings())
    work, data = tmp_path / "work", tmp_path / "data.txt"
    work.mkdir()
    data.write_text("x")
    policy = SandboxPolicy(
        cwd=str(work), writable=(str(work),), readonly=(Mount(str(data), "/in/data.txt"),)
    )
    launch = box.command(["cat", "/in/data.txt"], {"LANG": "C"}, policy)
    argv = launch.argv
    assert argv[-3:] == ["localhost/twin-sandbox:1", "cat", "/in/data.txt"]
    pairs = {(argv[i], argv[i + 1]) for i in range(len(argv) - 1)}
    assert ("--volume", "/usr:/usr:ro,rbind") in pairs
    assert ("--volume", f"{work}:{work}:rw,rbind") in pairs
    assert ("--volume", f"{data}:/in/data.txt:ro,rbind") in pairs
    assert ("--network", "none") in pairs and ("--env", "LANG=C") in pairs
    assert ("--workdir", str(work)) in pairs and ("--cap-drop", "all") in pairs
    if box.view.user is not None:
        assert ("--user", f"{box.view.user.uid}:{box.view.user.gid}") in pairs
    networked = box.command(["true"], {}, replace(policy, network=True)).argv
    assert "host" in networked
    odd = SandboxPolicy(cwd=str(work), writable=(f"{work}:x",))
    with pytest.raises(ConfigError, match="':' or ','"):
        box.command(["true"], {}, odd)

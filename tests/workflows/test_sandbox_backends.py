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
    sandbox_env,
    server_sandbox,
)
from twinengine.workflows.sandbox.bwrap import BwrapSandbox
from twinengine.workflows.sandbox.programs import find_program, not_found


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


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TWIN_SANDBOX_NETWORK", "bridge", "unknown sandbox_network 'bridge'"),
        ("TWIN_SANDBOX_NETWORK_DENY", "10.0.0.0/8,fd00::/8", "'fd00::/8' is not an IPv4"),
        ("TWIN_SANDBOX_NETWORK_DENY", "intranet", "'intranet' is not an IPv4"),
        ("TWIN_SANDBOX_UIDS", "100-50", "sandbox_uids must be a range"),
        ("TWIN_SANDBOX_UIDS", "0-10", "sandbox_uids must be a range"),
        ("TWIN_SANDBOX_UIDS", "many", "sandbox_uids must be a range"),
        ("TWIN_SANDBOX_PROCESSES", "-1", "must not be negative"),
        ("TWIN_SANDBOX_MEMORY_MB", "lots", "must be a whole number"),
    ],
)
def test_the_sandbox_limits_and_network_settings_refuse_what_they_cannot_mean(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    twinengine.core.reset()
    with pytest.raises(ConfigError, match=message) as caught:
        get_settings()
    assert caught.value.hint or "negative" in message or "whole" in message


def test_the_sandbox_settings_read_from_the_environment_and_travel_to_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = get_settings()
    assert settings.sandbox_network == "slirp4netns" and settings.sandbox_network_deny == ()
    assert settings.sandbox_uids == (2000000000, 2000065535)
    assert (settings.sandbox_processes, settings.sandbox_file_mb) == (1024, 16384)
    values = {
        "TWIN_SANDBOX_NETWORK": "HOST",
        "TWIN_SANDBOX_NETWORK_DENY": "10.1.2.3, 192.168.0.0/16",
        "TWIN_SANDBOX_UIDS": "none",
        "TWIN_SANDBOX_PROCESSES": "0",
        "TWIN_SANDBOX_MEMORY_MB": "512",
        "TWIN_SANDBOX_FILE_MB": "7",
        "TWIN_SANDBOX_TMP_MB": "9",
        "TWIN_SANDBOX_OUTPUT_MB": "11",
        "TWIN_SANDBOX_OUTPUT_FILES": "13",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    twinengine.core.reset()
    settings = get_settings()
    assert settings.sandbox_network == "host"
    assert settings.sandbox_network_deny == ("10.1.2.3/32", "192.168.0.0/16")
    assert settings.sandbox_uids is None and settings.sandbox_processes == 0
    assert (settings.sandbox_memory_mb, settings.sandbox_file_mb, settings.sandbox_tmp_mb) == (
        512,
        7,
        9,
    )
    assert (settings.sandbox_output_mb, settings.sandbox_output_files) == (11, 13)
    child = sandbox_env(settings)  # what twin serve's run workers are started with
    for name, value in child.items():
        monkeypatch.setenv(name, value)
    twinengine.core.reset()
    again = get_settings()
    for field in ("sandbox_network", "sandbox_network_deny", "sandbox_uids", "sandbox_processes",
                  "sandbox_memory_mb", "sandbox_file_mb", "sandbox_tmp_mb",
                  "sandbox_output_mb", "sandbox_output_files"):  # fmt: skip
        assert getattr(again, field) == getattr(settings, field), field


@pytest.mark.skipif(shutil.which("podman") is not None, reason="podman is installed here")
def test_a_required_sandbox_that_does_not_work_is_refused_naming_the_fix() -> None:
    settings = replace(get_settings(), sandbox="podman")
    with pytest.raises(SandboxUnavailableError) as caught:
        server_sandbox(settings)
    message = str(caught.value)
    assert "podman was not found on PATH nor in /usr/bin" in message
    assert "apt-get install podman" in message
    assert "\n" not in caught.value.message
    assert server_sandbox(replace(settings, sandbox="none")).name == "none"


@pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="bubblewrap not in /usr/bin")
def test_bwrap_is_found_in_usr_bin_when_the_servers_path_lacks_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    view = open_sandbox("bwrap", get_settings()).view
    monkeypatch.setenv("PATH", str(tmp_path))  # a service's PATH without /usr/bin
    assert BwrapSandbox(view).probe() is None  # a real sandbox started
    assert find_program("twin-no-such-helper") is None
    why = not_found("twin-no-such-helper", "twin-helpers")
    assert "not found on PATH nor in /usr/bin" in why and "not installed" not in why


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
    assert argv[-3:] == ["localhost/twin-sandbox:2", "cat", "/in/data.txt"]
    pairs = {(argv[i], argv[i + 1]) for i in range(len(argv) - 1)}
    assert ("--volume", "/usr:/usr:ro,rbind") in pairs
    assert ("--volume", f"{work}:{work}:rw,rbind") in pairs
    assert ("--volume", f"{data}:/in/data.txt:ro,rbind") in pairs
    assert ("--network", "none") in pairs and ("--env", "LANG=C") in pairs
    assert ("--workdir", str(work)) in pairs and ("--cap-drop", "all") in pairs
    if box.view.user is not None:
        assert ("--user", f"{box.view.user.uid}:{box.view.user.gid}") in pairs
    assert ("--pids-limit", str(box.view.processes)) in pairs and ("--ulimit", "core=0:0") in pairs
    networked = box.command(["true"], {}, replace(policy, network=True)).argv
    assert "slirp4netns:allow_host_loopback=false,enable_ipv6=false" in networked
    shared = open_sandbox("podman", replace(get_settings(), sandbox_network="host"))
    assert "host" in shared.command(["true"], {}, replace(policy, network=True)).argv
    odd = SandboxPolicy(cwd=str(work), writable=(f"{work}:x",))
    with pytest.raises(ConfigError, match="':' or ','"):
        box.command(["true"], {}, odd)

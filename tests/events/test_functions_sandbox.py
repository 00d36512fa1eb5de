"""Functions in the server's sandbox: what a command or python function sees and may do.

A :class:`FunctionService` made with a sandbox (as ``twin serve`` makes it) runs every
worker in bubblewrap: its environment is its definition's (never the server's), the
home and ``/etc/shadow`` are out of reach, the network only with ``network: true``, its
module folders only from the input roots — also when it is deployed.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.workflows.sandbox_helpers import Peer, connect_script, network_peer, sandbox_uid
from twinengine.core import get_database, get_settings
from twinengine.events.function_sandbox import FunctionSandbox, FunctionSandboxError
from twinengine.events.function_service import FunctionService
from twinengine.events.function_workers import CommandWorker, PythonWorker
from twinengine.events.functions import FunctionSpec, InvalidFunctionError
from twinengine.workflows.sandbox import open_sandbox, probe

SERVER_SECRET = "fn-server-secret-4471"
MODULE = """
import os, socket

def look(value):
    seen = {"uid": os.getuid(), "env": sorted(os.environ), "cwd": os.getcwd()}
    for path in value["paths"]:
        try:
            open(path, "rb").read(1)
            seen[path] = "READ"
        except OSError as exc:
            seen[path] = type(exc).__name__
    try:
        socket.create_connection((value.get("host", "127.0.0.1"), value["port"]), 3).close()
        seen["net"] = "CONNECTED"
    except OSError as exc:
        seen["net"] = type(exc).__name__
    print("printed by the function")
    return seen
"""
NOSY_PACKAGE = """
import os
try:
    open(os.environ.get("MARK", "/nonexistent"), "w").write("ran as the server")
except OSError:
    pass
"""


def bwrap_works() -> bool:
    return probe("bwrap", get_settings()) is None


pytestmark = pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot start here")


@pytest.fixture
def roots(tmp_path: Path) -> Path:
    folder = tmp_path / "roots" / "code"
    folder.mkdir(parents=True)
    (folder / "lookaround.py").write_text(MODULE)
    (folder / "nosy").mkdir()
    (folder / "nosy" / "__init__.py").write_text(NOSY_PACKAGE)
    (folder / "nosy" / "sub.py").write_text("def fn(v):\n    return v\n")
    for path in (tmp_path / "roots", folder, folder / "nosy"):
        path.chmod(0o755)
    return folder


@pytest.fixture
def service(
    twin_home: Path, roots: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FunctionService]:
    monkeypatch.setenv("TWIN_TEST_FN_SECRET", SERVER_SECRET)
    settings = replace(get_settings(), input_roots=(roots.parent,))
    box = open_sandbox("bwrap", settings)
    service = FunctionService(get_database(settings), settings, sandbox=box)
    yield service
    service.shutdown()


@pytest.fixture
def listener() -> Iterator[tuple[int, list[int]]]:
    server = socket.create_server(("127.0.0.1", 0))
    accepted = [0]

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted[0] += 1
            conn.close()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def test_a_command_function_sees_only_its_definition(
    service: FunctionService, twin_home: Path
) -> None:
    script = (
        "id -u; pwd; env | sort; cat /etc/shadow | sed 's/^/SHADOW /'; "
        f"ls {twin_home} && echo LISTED; head -c 16 {twin_home}/twin.db && echo READ; "
        "ls /proc | grep -c '^[0-9]'; true"
    )
    service.deploy("look", "command", ["sh", "-c", script], env={"GREETING": "hi"})
    call = service.invoke("look", {})
    assert call["state"] == "succeeded", call
    lines = call["result"].splitlines()
    assert sandbox_uid(lines[0])
    env = {line.split("=", 1)[0] for line in lines if "=" in line}
    assert {"GREETING", "HOME", "PATH", "TMPDIR", "LANG"} <= env
    assert not env & {"TWIN_TEST_FN_SECRET", "TWIN_HOME", "TWIN_DATABASE_URL"}
    assert SERVER_SECRET not in call["result"] + call["logs"]
    assert "SHADOW" not in call["result"] and "LISTED" not in call["result"]
    assert "READ" not in call["result"]
    assert int(lines[-1]) <= 4  # its own processes only
    assert not Path(lines[1]).exists()  # the per-call folder is gone after the call


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    with network_peer() as found:
        yield found


@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="slirp4netns not installed")
def test_network_only_when_the_function_allows_it_and_never_the_hosts(
    service: FunctionService, listener: tuple[int, list[int]], peer: Peer
) -> None:
    port, accepted = listener
    remote, local = f"{peer.address}:{peer.port}", f"127.0.0.1:{port}"
    probe_net = ["sh", "-c", connect_script(remote, local)]
    service.deploy("closed", "command", probe_net)
    call = service.invoke("closed", {})
    assert call["state"] == "succeeded" and "CONNECTED" not in call["result"], call
    service.deploy("opened", "command", probe_net, network=True)
    call = service.invoke("opened", {})
    assert call["state"] == "succeeded", call
    assert f"CONNECTED {remote} peer-hello" in call["result"], call
    assert f"refused {local}" in call["result"], call  # the server's loopback stays closed
    assert accepted[0] == 0


@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="slirp4netns not installed")
def test_a_python_function_in_the_sandbox(
    service: FunctionService,
    roots: Path,
    twin_home: Path,
    listener: tuple[int, list[int]],
    peer: Peer,
) -> None:
    port, accepted = listener
    service.deploy(
        "lookaround", "python", "lookaround:look", env={"PYTHONPATH": str(roots)}, max_workers=1
    )
    paths = [str(twin_home / "twin.db"), "/etc/shadow", f"/proc/{os.getppid()}/environ"]
    call = service.invoke("lookaround", {"paths": paths, "port": port})
    assert call["state"] == "succeeded", call
    seen = call["result"]
    assert all(seen[p] != "READ" for p in paths), seen
    assert seen["net"] != "CONNECTED" and accepted[0] == 0
    assert sandbox_uid(seen["uid"])
    assert "TWIN_TEST_FN_SECRET" not in seen["env"] and "TWIN_HOME" not in seen["env"]
    assert "printed by the function" in call["logs"]  # logs still reach the call
    assert not seen["cwd"].startswith(str(twin_home))
    service.deploy(
        "online", "python", "lookaround:look", env={"PYTHONPATH": str(roots)}, network=True
    )
    out = service.invoke("online", {"paths": [], "host": peer.address, "port": peer.port})
    assert out["result"]["net"] == "CONNECTED", out
    home = service.invoke("online", {"paths": [], "port": port})  # the server's loopback
    assert home["result"]["net"] != "CONNECTED" and accepted[0] == 0


def test_module_folders_must_lie_in_the_input_roots(
    service: FunctionService, twin_home: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "lookaround.py").write_text(MODULE)
    for folder in (elsewhere, twin_home):
        with pytest.raises(FunctionSandboxError, match="not shown to sandboxed functions"):
            service.deploy("x", "python", "lookaround:look", env={"PYTHONPATH": str(folder)})
    tool = twin_home / "tool.sh"  # a program the server has, the sandbox does not show
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    with pytest.raises(FunctionSandboxError, match="not shown"):
        service.deploy("y", "command", [str(tool)])


def test_deploying_runs_no_user_code_outside_the_sandbox(
    service: FunctionService, roots: Path, twin_home: Path
) -> None:
    mark = twin_home / "marked-by-deploy"
    service.deploy(
        "nosy", "python", "nosy.sub:fn", env={"PYTHONPATH": str(roots), "MARK": str(mark)}
    )  # finding nosy.sub imports nosy/__init__.py: in the sandbox, where the home is not
    assert not mark.exists()
    with pytest.raises(InvalidFunctionError, match="cannot find python module"):
        service.deploy("ghost", "python", "not_there:fn", env={"PYTHONPATH": str(roots)})


def test_a_timeout_kills_the_sandboxed_call(service: FunctionService) -> None:
    service.deploy("sleepy", "command", ["sh", "-c", "sleep 30 & sleep 30"], timeout=1)
    started = time.monotonic()
    call = service.invoke("sleepy", {})
    assert call["state"] == "failed" and "timed out" in call["error"]
    assert time.monotonic() - started < 15
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _sleepers():
        time.sleep(0.1)
    assert not _sleepers()


def _sleepers() -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd == b"sleep\x0030\x00":
                found.append(pid)
    return found


def test_a_function_killed_by_a_signal_reads_as_in_a_plain_run(service: FunctionService) -> None:
    settings = get_settings()
    plain = FunctionService(get_database(settings), settings)  # unconfined, as `twin` alone
    try:
        service.deploy("boxed", "command", ["sh", "-c", "kill -9 $$"])
        plain.deploy("plain", "command", ["sh", "-c", "kill -9 $$"])
        boxed_call, plain_call = service.invoke("boxed", {}), plain.invoke("plain", {})
    finally:
        plain.shutdown()
    assert boxed_call["error"] == plain_call["error"] == "killed by signal 9", boxed_call
    service.deploy("three", "command", ["sh", "-c", "exit 3"])
    assert service.invoke("three", {})["error"] == "exit code 3"


@pytest.mark.parametrize("kind", ["command", "python"])
@pytest.mark.parametrize("sandboxed", [True, False], ids=["confined", "plain"])
def test_a_nul_byte_in_the_environment_fails_the_call_not_the_pool(
    tmp_path: Path, roots: Path, sandboxed: bool, kind: str
) -> None:
    """Deploying refuses such a definition; one stored before that check still only
    fails its calls (the workers never raise for what they were given to start)."""
    target = "sh -c 'echo $X'" if kind == "command" else "lookaround:look"
    env = {"X": "a\0b", "PYTHONPATH": str(roots)}
    spec = FunctionSpec("nul", "alpha", kind, target, env=env)
    box = FunctionSandbox(open_sandbox("bwrap" if sandboxed else "none"), (str(roots.parent),))
    worker_class = CommandWorker if kind == "command" else PythonWorker
    worker = worker_class(spec, tmp_path, box)
    try:
        answer = worker.call({"paths": [], "port": 1}, timeout=30)
    finally:
        worker.close()
    assert answer["ok"] is False, answer
    assert "cannot start" in answer["error"], answer
    assert "the environment variable 'X' holds a NUL byte" in answer["error"], answer

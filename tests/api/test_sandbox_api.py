"""A project editor's tool on a real ``twin serve`` tries to break out of its sandbox.

Each escape the outside probe found (issue 12, item 1) is tried from a registered
``sh -c`` tool run through the API by an editor of project alpha, while project beta has
a finished run with a secret output: reading beta's outputs by ``../``, reading and
writing ``twin.db``, ``/etc/shadow``, the server's processes and environment, TCP to
127.0.0.1, unix sockets in ``/tmp``, ``/run`` and the abstract namespace without and
with ``NetworkAccess`` (never reached; another machine only with it), and outputs that
are links to forbidden files. hello-twin still runs and gives the same outputs as a
plain run.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Live, start_server, wait_run
from tests.api.test_workflows_api import HELLO, hello_archive
from tests.workflows.sandbox_helpers import connect_script, network_peer, sandbox_uid
from twinengine.core import Settings
from twinengine.workflows.sandbox import probe

SECRET = "beta-top-secret-7f3a"
SERVER_SECRET = "server-env-secret-19c2"

SHELL = b"""cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
inputs:
  script: {type: string, inputBinding: {position: 1}}
stdout: report.txt
outputs: {report: {type: stdout}}
"""
SHELL_NET = SHELL + b"requirements: {NetworkAccess: {networkAccess: true}}\n"
LINK = b"""cwlVersion: v1.2
class: CommandLineTool
baseCommand: [ln, -s]
inputs:
  target: {type: string, inputBinding: {position: 1}}
arguments: [{valueFrom: out.txt, position: 2}]
outputs: {out: {type: File, outputBinding: {glob: out.txt}}}
"""
JS = b"""cwlVersion: v1.2
class: CommandLineTool
requirements:
  InlineJavascriptRequirement:
    expressionLib:  # node's vm is no boundary: the sandbox's own object leads out
      - var P = this.constructor.constructor('return process')();
      - var G = this.constructor.constructor('return this')();
inputs:
  home: string
baseCommand: echo
arguments:
  - valueFrom: |
      ${
        var p = P;
        var fs = G.require('fs');
        var seen = [];
        [inputs.home + '/twin.db', '/etc/shadow', '/proc/1/environ'].forEach(function (f) {
          try { fs.readFileSync(f); seen.push('READ ' + f); }
          catch (e) { seen.push('refused ' + e.code); }
        });
        try { fs.writeFileSync(inputs.home + '/owned', 'x'); seen.push('WROTE'); }
        catch (e) { seen.push('refused ' + e.code); }
        seen.push('uid ' + p.getuid());
        seen.push('env ' + Object.keys(p.env).join(','));
        return seen.join(';');
      }
stdout: out.txt
outputs: {out: {type: stdout}}
"""

PROBE_HOME = Path(tempfile.gettempdir()) / "twin-sandbox-probe"
pytestmark = pytest.mark.skipif(
    probe("bwrap", Settings(home=PROBE_HOME, database_url="", store="")) is not None,
    reason="bubblewrap cannot start a sandbox on this machine",
)


MODULE = """
import os

def look(value):
    found = {"uid": os.getuid(), "env": sorted(os.environ)}
    for path in value["paths"]:
        try:
            found[path] = open(path).read(40)
        except OSError as exc:
            found[path] = type(exc).__name__
    return found
"""


@pytest.fixture(scope="module")
def code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An input root holding a python function's module (readable by the sandbox user)."""
    root = tmp_path_factory.mktemp("roots")
    (root / "lookmod.py").write_text(MODULE)
    root.chmod(0o755)
    return root


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, code: Path) -> Iterator[Live]:
    os.environ["TWIN_TEST_SERVER_SECRET"] = SERVER_SECRET  # the server's environment
    home = tmp_path_factory.mktemp("sandboxed")
    live = start_server(home, sandbox="bwrap", input_roots=(code,))
    yield live
    live.stop()
    os.environ.pop("TWIN_TEST_SERVER_SECRET", None)


def register(client: httpx.Client, data: bytes, name: str, project: str) -> str:
    made = client.post(
        "/api/v1/workflows", data={"project": project}, files={"file": (f"{name}.cwl", data)}
    )
    assert made.status_code == 201, made.text
    return made.json()["id"]


def run(client: httpx.Client, workflow: str, inputs: dict) -> dict:
    started = client.post("/api/v1/runs", json={"workflow": workflow, "inputs": inputs})
    assert started.status_code == 201, started.text
    return wait_run(client, started.json()["id"])


def report(client: httpx.Client, done: dict) -> str:
    assert done["state"] == "succeeded", (done["error"], done["steps"])
    outputs = client.get(f"/api/v1/runs/{done['id']}/outputs").json()["outputs"]
    return client.get(outputs["report"]["download"]).text


@pytest.fixture(scope="module")
def tenants(served: Live) -> dict:
    """alpha's editor with the shell tools; beta's finished run holding a secret."""
    alice = served.user_token("alice", {"alpha": "editor"})
    bob = served.user_token("bob", {"beta": "editor"})
    with served.client(token=bob) as client:
        shell = register(client, SHELL, "shell", "beta")
        done = run(client, shell, {"script": f"echo {SECRET}"})
        assert SECRET in report(client, done)
    with served.client(token=alice) as client:
        ids = {name: register(client, data, name, "alpha") for name, data in (
            ("shell", SHELL), ("shellnet", SHELL_NET), ("link", LINK), ("js", JS),
        )}  # fmt: skip
    return {"alice": alice, "beta_run": done["id"], **ids}


def shell(served: Live, tenants: dict, script: str, tool: str = "shell") -> str:
    with served.client(token=tenants["alice"]) as client:
        return report(client, run(client, tenants[tool], {"script": script + "\ntrue"}))


def test_other_projects_outputs_and_the_home_are_invisible(served: Live, tenants: dict) -> None:
    home = served.settings.home
    beta_outputs = home / "runs" / tenants["beta_run"] / "outputs"
    assert SECRET in (beta_outputs / "report.txt").read_text()  # there, outside
    text = shell(
        served,
        tenants,
        f"cat ../../../../runs/*/outputs/* {beta_outputs}/report.txt; ls -a {home}; "
        f"ls ../../../..; echo done",
    )
    assert SECRET not in text
    assert "twin.db" not in text and "uploads" not in text and "workflows" not in text
    assert text.strip().endswith("done")


def test_twin_db_cannot_be_read_or_written(served: Live, tenants: dict) -> None:
    db = served.settings.home / "twin.db"
    before = db.read_bytes()[:100]
    text = shell(
        served,
        tenants,
        f"head -c 16 {db} && echo READ; echo x >> {db} && echo WROTE; "
        f"sqlite3 {db} .tables 2>&1; echo done",
    )
    assert "READ" not in text and "WROTE" not in text and "SQLite format" not in text
    assert db.read_bytes()[:100] == before
    with sqlite3.connect(db) as conn:  # still the server's, and no admin was added
        admins = conn.execute("select count(*) from users where admin").fetchone()[0]
    assert admins == 1


def test_root_owned_files_stay_unreadable(served: Live, tenants: dict) -> None:
    text = shell(
        served, tenants, "id -u; cat /etc/shadow /etc/gshadow | sed 's/^/SHADOW /'; ls /home"
    )
    assert sandbox_uid(text.splitlines()[0])  # a root server's steps: a uid of their own
    assert "SHADOW" not in text


def test_server_processes_and_environment_are_invisible(served: Live, tenants: dict) -> None:
    text = shell(
        served,
        tenants,
        "ls /proc | grep -c '^[0-9]'; cat /proc/1/environ; echo; env; "
        "cat /proc/*/cmdline | tr '\\0' ' '",
    )
    assert int(text.splitlines()[0]) <= 6  # its own few processes
    assert SERVER_SECRET not in text and "TWIN_HOME" not in text and "uvicorn" not in text
    assert f"/proc/{os.getpid()}" not in text


class Listener:
    """A TCP socket on 127.0.0.1 and unix sockets (in /tmp, /run, abstract) that count
    the connections they accept."""

    def __init__(self, folder: Path) -> None:
        self.accepted = 0
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.paths = [str(folder / "db.sock")]
        os.makedirs("/run", exist_ok=True)
        self.paths.append(f"/run/twin-test-{os.getpid()}.sock")
        self.abstract = f"twin-test-{os.getpid()}"
        self.sockets = [self.tcp]
        for address in [*self.paths, "\0" + self.abstract]:
            unix = socket.socket(socket.AF_UNIX)
            unix.bind(address)
            unix.listen()
            self.sockets.append(unix)
        for sock in self.sockets:
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        for path in self.paths:
            Path(path).unlink(missing_ok=True)


def test_network_only_with_network_access_and_never_the_servers(
    served: Live, tenants: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    listener = Listener(tmp_path_factory.mktemp("sock", numbered=True))
    targets = [f"127.0.0.1:{listener.port}", *(f"{path}:" for path in listener.paths)]
    targets.append(f"@{listener.abstract}:")
    with contextlib.ExitStack() as stack:
        stack.callback(listener.close)
        peer = stack.enter_context(network_peer()) if os.geteuid() == 0 else None
        if peer is not None:
            targets.append(f"{peer.address}:{peer.port}")
        closed = shell(served, tenants, connect_script(*targets))
        assert "CONNECTED" not in closed, closed
        opened = shell(served, tenants, connect_script(*targets), tool="shellnet")
        for target in targets[:-1] if peer is not None else targets:
            assert f"refused {target}" in opened, opened  # loopback, socket files, abstract
        if peer is not None:  # another machine: reachable
            assert f"CONNECTED {peer.address}:{peer.port} peer-hello" in opened, opened
        assert listener.accepted == 0


@pytest.mark.parametrize("target", ["/etc/shadow", "HOME/twin.db", "BETA"])
def test_an_output_linked_to_a_forbidden_file_fails_the_step(
    served: Live, tenants: dict, target: str
) -> None:
    home = served.settings.home
    beta = home / "runs" / tenants["beta_run"] / "outputs" / "report.txt"
    target = target.replace("HOME", str(home)).replace("BETA", str(beta))
    with served.client(token=tenants["alice"]) as client:
        done = run(client, tenants["link"], {"target": target})
        assert done["state"] == "failed"
        message = done["steps"][0]["message"]
        assert "leads outside the step's working folder" in message, message
        assert target not in message  # where it led is not told
        assert client.get(f"/api/v1/runs/{done['id']}/outputs").json()["outputs"] in (None, {})
    outputs = home / "runs" / done["id"] / "outputs"
    assert not outputs.exists() or not any(outputs.iterdir())


def globbing(pattern: str) -> bytes:
    return SHELL.replace(
        b"stdout: report.txt\noutputs: {report: {type: stdout}}",
        b"outputs: {o: {type: 'File[]', outputBinding: {glob: '" + pattern.encode() + b"'}}}",
    )


@pytest.mark.parametrize(
    "pattern", ["../../../../workflows/*/*", "../../../../*", "../../../../nonexist*"]
)
def test_a_glob_outside_the_folder_is_refused_naming_only_the_pattern(
    served: Live, tenants: dict, pattern: str
) -> None:
    with served.client(token=tenants["alice"]) as client:
        tool = register(client, globbing(pattern), "glob", "alpha")
        done = run(client, tool, {"script": "true"})
    assert done["state"] == "failed", done  # also where nothing matches: no oracle
    message = done["steps"][0]["message"]
    assert f"glob {pattern!r} reaches outside the step's working folder" in message, message
    for name in ("workflow.cwl", "twin.db", "mlflow", "uploads", "runs"):
        assert name not in message.replace(pattern, ""), message


def test_sparse_outputs_are_refused_on_a_served_run(served: Live, tenants: dict) -> None:
    with served.client(token=tenants["alice"]) as client:
        tool = register(client, globbing("big*.bin"), "sparse", "alpha")
        started = time.monotonic()
        done = run(client, tool, {"script": "for i in 1 2 3; do truncate -s 1G big$i.bin; done"})
    assert done["state"] == "failed" and time.monotonic() - started < 10, done
    assert "output 'big1.bin' is a sparse file" in done["steps"][0]["message"], done


NUL_ARGUMENT = b"""cwlVersion: v1.2
class: CommandLineTool
requirements: {InlineJavascriptRequirement: {}}
inputs: {}
baseCommand: echo
arguments: ['$("a" + String.fromCharCode(0))']
outputs: {out: stdout}
"""


def test_a_nul_byte_in_a_command_line_fails_the_step(served: Live, tenants: dict) -> None:
    with served.client(token=tenants["alice"]) as client:
        tool = register(client, NUL_ARGUMENT, "nul", "alpha")
        done = run(client, tool, {})
        assert done["state"] == "failed", done  # not interrupted, no step left running
        assert [step["state"] for step in done["steps"]] == ["failed"], done["steps"]
        assert "an argument holds a NUL byte" in done["steps"][0]["message"], done["steps"]
        still = run(client, tenants["shell"], {"script": "echo still serving"})
        assert report(client, still) == "still serving\n"


def test_expressions_run_in_a_sandboxed_node(served: Live, tenants: dict) -> None:
    home = served.settings.home
    with served.client(token=tenants["alice"]) as client:
        done = run(client, tenants["js"], {"home": str(home)})
        assert done["state"] == "succeeded", (done["error"], done["steps"])
        outputs = client.get(f"/api/v1/runs/{done['id']}/outputs").json()["outputs"]
        text = client.get(outputs["out"]["download"]).text
    assert "READ" not in text and "WROTE" not in text, text
    assert not (home / "owned").exists()
    uid = text.split("uid ")[1].split(";")[0]
    assert sandbox_uid(uid), text
    assert SERVER_SECRET not in text and "TWIN_HOME" not in text


def test_functions_of_a_project_run_in_the_sandbox(served: Live, tenants: dict, code: Path) -> None:
    home = served.settings.home
    beta = home / "runs" / tenants["beta_run"] / "outputs" / "report.txt"
    paths = [str(home / "twin.db"), str(beta), "/etc/shadow", "/proc/1/environ"]
    script = "id -u; env; for f in " + " ".join(paths) + "; do head -c 40 $f; done; true"
    with served.client(token=tenants["alice"]) as client:
        for body in (
            {"name": "peek", "kind": "command", "target": ["sh", "-c", script]},
            {"name": "pylook", "kind": "python", "target": "lookmod:look",
             "env": {"PYTHONPATH": str(code)}},
        ):  # fmt: skip
            made = client.post("/api/v1/functions", json={**body, "project": "alpha"})
            assert made.status_code == 201, made.text
        shell_call = client.post("/api/v1/functions/peek/invoke", json={}).json()
        py_call = client.post("/api/v1/functions/pylook/invoke", json={"paths": paths}).json()
        outside = client.post(
            "/api/v1/functions",
            json={"name": "bad", "kind": "python", "target": "lookmod:look",
                  "project": "alpha", "env": {"PYTHONPATH": str(home)}},
        )  # fmt: skip
        assert outside.status_code == 400 and "not shown" in outside.text
    assert shell_call["state"] == "succeeded", shell_call
    assert py_call["state"] == "succeeded", py_call
    text = json.dumps([shell_call, py_call])
    assert SECRET not in text and SERVER_SECRET not in text and "SQLite" not in text
    assert "TWIN_HOME" not in text and "root:" not in text
    assert sandbox_uid(shell_call["result"].splitlines()[0])
    assert sandbox_uid(py_call["result"]["uid"])


def test_hello_twin_gives_the_same_outputs_as_a_plain_run(
    served: Live, tenants: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib", reason="the plot step needs matplotlib")
    bin_dir = str(Path(sys.executable).parent)  # steps run `python3`: this one
    monkeypatch.setenv("PATH", os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
    with served.client(token=tenants["alice"]) as client:
        made = client.post(
            "/api/v1/workflows",
            data={"name": "hello-twin", "project": "alpha"},
            files={"file": ("hello.tar.gz", hello_archive())},
        )
        assert made.status_code == 201, made.text
        done = run(client, made.json()["id"], {"samples": 500})
        assert done["state"] == "succeeded", (done["error"], done["steps"])
        served_out = client.get(f"/api/v1/runs/{done['id']}/outputs").json()["outputs"]
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"samples": 500}))
    plain = subprocess.run(
        [os.path.join(bin_dir, "twin-cwl-runner"), "--quiet", "--outdir", str(tmp_path / "o"),
         str(HELLO / "workflow.cwl"), str(job)],
        env={**os.environ, "TWIN_HOME": str(tmp_path / "home")},
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    plain_out = json.loads(plain.stdout)
    for name in ("raw", "cleaned", "clean_report", "aggregated"):
        assert served_out[name]["checksum"] == plain_out[name]["checksum"], name
    assert served_out["outliers_removed"] == plain_out["outliers_removed"]
    assert served_out["plot_png"]["size"] > 1000

"""Steps in the sandbox, run by the engine itself (the way ``twin serve``'s runs are).

Real bubblewrap, real processes: the executor's contract holds for a confined command
(exit codes, captured streams, peak memory, time limits and cancel kill the whole tree);
the engine's own workflows give the same outputs confined and plain, on both paths;
steps cwltool would run with its own runner are refused by name; outputs, staged copies
and ``loadContents`` never lead the run process outside the step's folder and inputs;
``twin run`` without ``--sandbox`` is unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.workflows.helpers import DATA, run_in_process, twin, write_job
from tests.workflows.sandbox_helpers import Peer, connect_script, network_peer, sandbox_uid
from twinengine.core import get_settings
from twinengine.workflows.executors.base import JobSpec, run_blocking
from twinengine.workflows.executors.local import LocalExecutor
from twinengine.workflows.runs import RunStore
from twinengine.workflows.sandbox import Mount, open_sandbox, probe
from twinengine.workflows.sandbox.layout import plan
from twinengine.workflows.sandbox.policy import SandboxPolicy

pytestmark = pytest.mark.skipif(
    probe("bwrap", get_settings()) is not None, reason="bubblewrap cannot start here"
)


def confined(tmp_path: Path, key: str, script: str, **extra) -> JobSpec:
    work = tmp_path / key
    work.mkdir()
    return JobSpec(
        key=key,
        argv=["sh", "-c", script],
        cwd=str(work),
        env={"PATH": "/usr/bin:/bin"},
        stdout_path=str(work / "out.txt"),
        stderr_path=str(tmp_path / f"{key}.err"),
        stderr_is_log=True,
        sandbox="bwrap",
        writable=(str(work),),
        **extra,
    )


def drain(executor: LocalExecutor, count: int, timeout: float = 30) -> dict:
    results: dict = {}
    deadline = time.monotonic() + timeout
    while len(results) < count and time.monotonic() < deadline:
        for result in executor.wait(0.5):
            results[result.key] = result
    return results


def sleepers(seconds: str) -> list[int]:
    """The processes running ``sleep SECONDS`` (and the sandboxes holding them)."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        script = f"sleep {seconds} & sleep {seconds}".encode()
        if pid.isdigit() and (script in command or command[:2] == [b"sleep", seconds.encode()]):
            found.append(int(pid))
    return found


def test_the_executor_contract_holds_in_the_sandbox(tmp_path: Path) -> None:
    data = tmp_path / "input.txt"
    data.write_text("given\n")
    executor = LocalExecutor(cores=2, ram_mb=0)
    executor.submit(confined(tmp_path, "code", "echo to-stdout; echo to-stderr >&2; exit 3"))
    executor.submit(
        confined(
            tmp_path,
            "memory",
            'python3 -c "b = bytearray(80 << 20); print(len(b))"; id -u; cat ' + str(data),
            readonly=(Mount(str(data), str(data)),),
        )
    )
    executor.submit(replace(confined(tmp_path, "missing", "true"), argv=["no-such-program-x"]))
    results = drain(executor, 3)
    executor.close()
    assert results["code"].exit_code == 3
    assert (tmp_path / "code" / "out.txt").read_text() == "to-stdout\n"
    assert (tmp_path / "code.err").read_text() == "to-stderr\n"
    out = (tmp_path / "memory" / "out.txt").read_text().splitlines()
    assert out[0] == str(80 << 20) and out[2] == "given"
    assert sandbox_uid(out[1])
    assert results["memory"].peak_memory > 80 << 20  # the confined command's, not bwrap's
    assert results["missing"].exit_code == 127 and "no-such-program-x" in results["missing"].error


def test_a_time_limit_and_a_cancel_kill_the_whole_sandboxed_tree(tmp_path: Path) -> None:
    executor = LocalExecutor(cores=2, ram_mb=0)
    executor.submit(confined(tmp_path, "limited", "sleep 301.25 & sleep 301.25", timelimit=1))
    executor.submit(confined(tmp_path, "cancelled", "sleep 302.25 & sleep 302.25"))
    time.sleep(1)
    executor.cancel("cancelled")
    results = drain(executor, 2, timeout=20)
    executor.close()
    assert results["limited"].timed_out and results["cancelled"].cancelled
    deadline = time.monotonic() + 5
    while (sleepers("301.25") or sleepers("302.25")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sleepers("301.25") and not sleepers("302.25")


def test_run_blocking_confines_too(tmp_path: Path) -> None:
    spec = confined(tmp_path, "blocking", "id -u; ls /proc | grep -c '^[0-9]'; exit 4")
    result = run_blocking(spec)
    lines = (tmp_path / "blocking" / "out.txt").read_text().splitlines()
    assert result.exit_code == 4
    assert sandbox_uid(lines[0]) and int(lines[1]) <= 5


def test_the_home_and_the_configuration_are_masked_when_inside_a_visible_folder(
    tmp_path: Path,
) -> None:
    box = open_sandbox("bwrap", get_settings())
    view = box.view.__class__(
        home="/usr/share/twin-home",
        system=box.view.system,
        python=box.view.python,
        hidden=("/etc/twin.toml",),
    )
    ops = plan(view, SandboxPolicy(cwd="/usr/share/twin-home/runs/r/work/j"))
    kinds = {(op.kind, op.dest) for op in ops}
    assert ("tmpfs", "/usr/share/twin-home") in kinds and ("mask", "/etc/twin.toml") in kinds


PIPELINE = """cwlVersion: v1.2
class: Workflow
requirements: {ScatterFeatureRequirement: {}}
inputs:
  items: string[]
  data: File
outputs:
  echoed:
    type: File[]
    outputSource: say/out
  counted: {type: File, outputSource: count/out}
  sorted: {type: File, outputSource: order/out}
steps:
  say: {run: ECHO, scatter: item, in: {item: items}, out: [out]}
  order:
    in: {f: data}
    out: [out]
    run:
      class: CommandLineTool
      baseCommand: sort
      inputs: {f: {type: File, inputBinding: {position: 1}}}
      outputs: {out: stdout}
      stdout: sorted.txt
  count:
    in: {f: order/out}
    out: [out]
    run:
      class: CommandLineTool
      baseCommand: [wc, -l]
      inputs: {f: File}
      stdin: $(inputs.f.path)
      outputs: {out: stdout}
"""


PAIRED = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'cat "$0" "$0.idx"']
inputs:
  f: {type: File, secondaryFiles: [.idx], inputBinding: {position: 1}}
outputs: {out: stdout}
"""


def _engine_runs(tmp_path: Path, sandbox: str | None, native: bool) -> dict:
    doc = tmp_path / "pipeline.cwl"
    doc.write_text(PIPELINE.replace("ECHO", str(DATA / "echo.cwl")))
    data = tmp_path / "data.txt"
    data.write_text("pear\napple\nfig\n")
    (tmp_path / "data.txt.idx").write_text("an index\n")
    paired = tmp_path / "paired.cwl"
    paired.write_text(PAIRED)
    results = {}
    data_file = {"class": "File", "path": str(data)}
    cases = {
        "pipeline": (doc, {"items": ["a", "b"], "data": data_file}),
        "secondary": (paired, {"f": data_file}),
        "scatter": (DATA / "scatter.cwl", DATA / "scatter-job.yml"),
        "echo": (DATA / "echo.cwl", {"item": "hello sandbox"}),
    }
    for name, (doc, job) in cases.items():
        if isinstance(job, dict):
            job = write_job(tmp_path / f"{name}-{sandbox}-{native}.json", job)
        argv = ["--outdir", str(tmp_path / f"out-{name}-{sandbox}-{native}"), str(doc), str(job)]
        code, out, _ = run_in_process(argv, sandbox=sandbox, native=native)
        results[name] = (code, _checksums(out))
    return results


def _checksums(value):
    if isinstance(value, list):
        return [_checksums(v) for v in value]
    if isinstance(value, dict):
        if value.get("class") == "File":
            return (value["basename"], value["checksum"], value["size"])
        return {k: _checksums(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("native", [True, False], ids=["native", "cwltool"])
def test_the_engines_workflows_give_the_same_outputs_confined(tmp_path: Path, native: bool) -> None:
    plain = _engine_runs(tmp_path, None, native)
    boxed = _engine_runs(tmp_path, "bwrap", native)
    assert all(code == 0 for code, _ in plain.values()), plain
    assert boxed == plain


TOOL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
inputs:
  script: {{type: string, inputBinding: {{position: 1}}}}
{extra}
"""


def _tool(tmp_path: Path, name: str, extra: str) -> str:
    path = tmp_path / f"{name}.cwl"
    path.write_text(TOOL.format(extra=extra))
    return str(path)


def _boxed(tmp_path: Path, doc: str, job: dict, native: bool = True) -> tuple[int, dict]:
    job_file = write_job(tmp_path / f"job-{len(list(tmp_path.iterdir()))}.json", job)
    code, out, opts = run_in_process(
        ["--outdir", str(tmp_path / "out"), doc, str(job_file)], sandbox="bwrap", native=native
    )
    steps = RunStore().steps(opts.run_id)
    return code, {"out": out, "messages": [s.get("message") or "" for s in steps]}


@pytest.mark.parametrize("native", [True, False], ids=["native", "cwltool"])
@pytest.mark.parametrize(
    "case",
    ["dotdot-glob", "link-out", "custom-output", "directory-link"],
)
def test_outputs_that_lead_outside_fail_the_step(tmp_path: Path, native: bool, case: str) -> None:
    home = get_settings().home
    secret = home / "secret.txt"
    secret.write_text("the server's")
    outputs = {
        "dotdot-glob": "outputs: {o: {type: File, outputBinding: {glob: ../../../../secret.txt}}}",
        "link-out": "outputs: {o: {type: File, outputBinding: {glob: out.txt}}}",
        "custom-output": "outputs: {o: File}",
        "directory-link": "outputs: {o: {type: Directory, outputBinding: {glob: d}}}",
    }
    scripts = {
        "dotdot-glob": "true",
        "link-out": f"ln -s {secret} out.txt",
        "custom-output": 'echo \'{"o": {"class": "File", "path": "' + str(secret) + "\"}}' "
        "> cwl.output.json",
        "directory-link": f"mkdir d && ln -s {secret} d/x",
    }
    if native and case == "directory-link":
        pytest.skip("the native path takes no Directory outputs (cwltool runs them)")
    doc = _tool(tmp_path, case, outputs[case])
    code, seen = _boxed(tmp_path, doc, {"script": scripts[case]}, native)
    assert code != 0
    refusals = ("leads outside", "reaches outside", "must be within designated output directory")
    assert any(r in m for m in seen["messages"] for r in refusals), seen
    out_dir = tmp_path / "out"
    assert not any("the server's" in p.read_text() for p in out_dir.rglob("*") if p.is_file())


def test_load_contents_of_a_link_out_is_refused(tmp_path: Path) -> None:
    secret = get_settings().home / "secret.txt"
    secret.write_text("loaded-secret")
    doc = _tool(
        tmp_path,
        "load",
        "requirements: {InlineJavascriptRequirement: {}}\n"
        "outputs:\n  o:\n    type: string\n"
        "    outputBinding:\n      glob: out.txt\n      loadContents: true\n"
        "      outputEval: $(self[0].contents)",
    )
    code, seen = _boxed(tmp_path, doc, {"script": f"ln -s {secret} out.txt"}, native=False)
    assert code != 0 and "loaded-secret" not in json.dumps(seen)
    assert any("leads outside" in m for m in seen["messages"]), seen


def test_a_writable_staged_copy_may_not_follow_a_link_out(tmp_path: Path) -> None:
    secret = get_settings().home / "secret.txt"
    secret.write_text("copied-secret")
    given = tmp_path / "given"
    given.mkdir()
    (given / "leak").symlink_to(secret)
    doc = _tool(
        tmp_path,
        "iwd",
        "requirements:\n  InitialWorkDirRequirement:\n"
        "    listing: [{entry: $(inputs.d), writable: true}]\n"
        "  InlineJavascriptRequirement: {}\n"
        "outputs: {o: stdout}\nstdout: o.txt",
    )
    doc_text = Path(doc).read_text().replace("inputs:\n", "inputs:\n  d: Directory\n")
    Path(doc).write_text(doc_text)
    code, seen = _boxed(
        tmp_path, doc, {"script": "cat d/leak", "d": {"class": "Directory", "path": str(given)}},
        native=False,
    )  # fmt: skip
    assert code != 0 and "copied-secret" not in json.dumps(seen)
    assert any("leads outside" in m for m in seen["messages"]), seen


def test_steps_cwltool_would_run_itself_are_refused_by_name(tmp_path: Path) -> None:
    code, seen = _boxed(tmp_path, str(DATA / "docker-required.cwl"), {}, native=False)
    assert code != 0
    assert any("DockerRequirement" in m for m in seen["messages"]), seen


def test_a_docker_hint_runs_in_the_sandbox_without_a_container(tmp_path: Path) -> None:
    doc = _tool(
        tmp_path,
        "hinted",
        "hints: {DockerRequirement: {dockerPull: 'debian:12'}}\noutputs: {o: stdout}",
    )
    code, seen = _boxed(tmp_path, doc, {"script": "id -u"})
    assert code == 0, seen
    text = Path(seen["out"]["o"]["path"]).read_text().strip()
    assert sandbox_uid(text)


def test_twin_run_without_sandbox_runs_plainly(tmp_path: Path) -> None:
    doc = _tool(tmp_path, "plain", "outputs: {o: stdout}")
    job = write_job(tmp_path / "job.json", {"script": "id -u; cat /proc/1/cmdline | head -c 3"})
    done = twin("run", "--quiet", "--outdir", str(tmp_path / "o"), doc, str(job))
    assert done.returncode == 0, done.stderr
    text = Path(json.loads(done.stdout)["o"]["path"]).read_text()
    assert text.splitlines()[0] == str(os.geteuid())
    boxed = twin("run", "--sandbox", "bwrap", "--quiet", "--outdir", str(tmp_path / "b"), doc,
                 str(job))  # fmt: skip
    assert boxed.returncode == 0, boxed.stderr
    text = Path(json.loads(boxed.stdout)["o"]["path"]).read_text()
    assert sandbox_uid(text.splitlines()[0])


def test_relinking_initial_work_dir_follows_no_link_the_tool_made(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "data.txt").write_text("must survive")
    given = tmp_path / "data.txt"
    given.write_text("input")
    doc = _tool(
        tmp_path,
        "relink",
        "requirements:\n  InitialWorkDirRequirement:\n"
        "    listing: [{entryname: sub/data.txt, entry: $(inputs.f)}]\n"
        "outputs: {o: stdout}",
    )
    Path(doc).write_text(Path(doc).read_text().replace("inputs:\n", "inputs:\n  f: File\n"))
    job = {"script": f"rm -rf sub; ln -s {victim} sub", "f": {"class": "File", "path": str(given)}}
    code, seen = _boxed(tmp_path, doc, job, native=False)
    assert (victim / "data.txt").read_text() == "must survive"
    assert code != 0 and any("leads outside" in m for m in seen["messages"]), seen


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    with network_peer() as found:
        yield found


@pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="slirp4netns not installed")
@pytest.mark.parametrize("native", [True, False], ids=["native", "cwltool"])
def test_network_access_opens_the_network_but_not_the_host(
    tmp_path: Path, native: bool, peer: Peer
) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    local = f"127.0.0.1:{server.getsockname()[1]}"
    script = connect_script(f"{peer.address}:{peer.port}", local)
    try:
        closed = _tool(tmp_path, "closed", "outputs: {o: stdout}")
        code, seen = _boxed(tmp_path, closed, {"script": script}, native)
        text = Path(seen["out"]["o"]["path"]).read_text()
        assert code == 0 and "CONNECTED" not in text, text
        opened = _tool(
            tmp_path,
            "opened",
            "requirements: {NetworkAccess: {networkAccess: true}}\noutputs: {o: stdout}",
        )
        code, seen = _boxed(tmp_path, opened, {"script": script}, native)
        text = Path(seen["out"]["o"]["path"]).read_text()
        assert code == 0 and f"CONNECTED {peer.address}:{peer.port} peer-hello" in text, text
        assert f"refused {local}" in text, text  # the host's loopback stays closed
    finally:
        server.close()

"""What one sandbox may take of the machine, and how its end reads.

Real bubblewrap and real processes: a tool killed by a signal (its own ``kill -9``, a
time limit, a cancel) reports what a plain run reports, and so does a CWL step on both
paths; a bounded fork bomb in one step stops at ``sandbox_processes`` while another step
and the server keep forking (each sandbox runs as a uid of its own); ``ramMax`` bounds a
process's data and ``sandbox_memory_mb`` its address space, ``sandbox_file_mb`` its
files, ``sandbox_tmp_mb`` its ``/tmp``; a time limit sets a CPU limit; the OOM killer picks
sandboxed processes first; a uid is held for exactly as long as its sandbox runs, and a
server with every uid in use refuses the next step by name; a uid range that an account
or a subordinate-id range uses is refused.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

import twinengine.core
from tests.workflows.helpers import run_in_process, write_job
from tests.workflows.sandbox_helpers import sandbox_uid
from twinengine.core import get_settings
from twinengine.core.errors import ConfigError
from twinengine.workflows.executors.base import JobResult, JobSpec, run_blocking
from twinengine.workflows.executors.local import LocalExecutor
from twinengine.workflows.runs import RunStore
from twinengine.workflows.sandbox import open_sandbox, probe
from twinengine.workflows.sandbox.uids import check_range

pytestmark = pytest.mark.skipif(
    probe("bwrap", get_settings()) is not None, reason="bubblewrap cannot start here"
)
ROOT = os.geteuid() == 0


def job(tmp_path: Path, key: str, script: str, sandbox: str | None = "bwrap", **extra) -> JobSpec:
    work = tmp_path / f"{key}-{sandbox}"
    work.mkdir()
    return JobSpec(
        key=key,
        argv=["sh", "-c", script],
        cwd=str(work),
        env={"PATH": "/usr/bin:/bin"},
        stdout_path=str(work / "out.txt"),
        stderr_path=str(work / "err.txt"),
        sandbox=sandbox,
        writable=(str(work),) if sandbox else (),
        **extra,
    )


def output(spec: JobSpec) -> str:
    return Path(spec.stdout_path or "").read_text()


def run_all(specs: list[JobSpec], cancel: str | None = None) -> dict[str, JobResult]:
    executor = LocalExecutor(cores=4, ram_mb=0)
    for spec in specs:
        executor.submit(spec)
    if cancel is not None:
        time.sleep(1)
        executor.cancel(cancel)
    results: dict[str, JobResult] = {}
    deadline = time.monotonic() + 60
    while len(results) < len(specs) and time.monotonic() < deadline:
        for result in executor.wait(0.5):
            results[result.key] = result
    executor.close()
    return results


SCRIPTS = {
    "killed": "kill -9 $$",
    "segv": "kill -SEGV $$",
    "three": "exit 3",
    "limited": "sleep 30",
    "cancelled": "sleep 31",
}


def test_a_signalled_tool_ends_as_in_a_plain_run(tmp_path: Path) -> None:
    ends = {}
    for sandbox in (None, "bwrap"):
        specs = [
            job(tmp_path, key, script, sandbox, timelimit=1 if key == "limited" else None)
            for key, script in SCRIPTS.items()
        ]
        results = run_all(specs, cancel="cancelled")
        ends[sandbox] = {
            key: (r.exit_code, r.timed_out, r.cancelled, r.error) for key, r in results.items()
        }
    assert ends["bwrap"] == ends[None]
    assert ends[None]["killed"] == (-9, False, False, None)
    assert ends[None]["segv"][0] == -11 and ends[None]["three"][0] == 3
    assert ends[None]["limited"][:2] == (-15, True)
    assert ends[None]["cancelled"][:3] == (-15, False, True)
    blocking = run_blocking(job(tmp_path, "blocking", "kill -9 $$"))
    assert blocking.exit_code == -9


KILLER = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
inputs:
  script: {type: string, inputBinding: {position: 1}}
outputs: {o: stdout}
temporaryFailCodes: [3]
permanentFailCodes: [4]
"""


@pytest.mark.parametrize("native", [True, False], ids=["native", "cwltool"])
def test_a_cwl_step_killed_by_a_signal_fails_as_in_a_plain_run(
    tmp_path: Path, native: bool
) -> None:
    doc = tmp_path / "killer.cwl"
    doc.write_text(KILLER)
    ends = {}
    for sandbox in (None, "bwrap"):
        for script in ("kill -9 $$", "exit 3", "exit 4", "kill -TERM $$"):
            job_file = write_job(tmp_path / f"job-{len(ends)}.json", {"script": script})
            code, _, opts = run_in_process(
                ["--outdir", str(tmp_path / f"o{len(ends)}"), str(doc), str(job_file)],
                sandbox=sandbox,
                native=native,
            )
            steps = RunStore().steps(opts.run_id)
            ends[(sandbox, script)] = (code, [s.get("message") for s in steps])
    for script in ("kill -9 $$", "exit 3", "exit 4", "kill -TERM $$"):
        assert ends[("bwrap", script)] == ends[(None, script)], script
    assert "terminated by signal 9" in str(ends[(None, "kill -9 $$")])


@pytest.mark.skipif(not ROOT, reason="a uid per sandbox needs a server running as root")
def test_a_fork_bomb_stops_no_other_step_and_not_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_SANDBOX_PROCESSES", "40")
    twinengine.core.reset()
    bomb = job(
        tmp_path,
        "bomb",
        'python3 -c "\nimport os, time\nn = 0\ntry:\n    for n in range(2000):\n'
        "        if os.fork() == 0:\n            time.sleep(4)\n            os._exit(0)\n"
        'except OSError as exc:\n    print(n, exc.errno)\ntime.sleep(4)"; id -u',
    )
    other = job(
        tmp_path,
        "other",
        "sleep 1; for i in $(seq 30); do sleep 0.2 & done; wait; echo forked 30; id -u",
    )
    executor = LocalExecutor(cores=4, ram_mb=0)
    executor.submit(bomb)
    executor.submit(other)
    time.sleep(2)  # the bomb holds its processes now
    late = job(tmp_path, "late", "for i in $(seq 30); do true & done; wait; echo late ok")
    executor.submit(late)
    server = subprocess.run(["sh", "-c", "for i in $(seq 50); do true & done; wait; echo ok"],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    results: dict[str, JobResult] = {}
    deadline = time.monotonic() + 60
    while len(results) < 3 and time.monotonic() < deadline:
        for result in executor.wait(0.5):
            results[result.key] = result
    executor.close()
    stopped_at, errno_, bomb_uid = output(bomb).split()
    assert 30 <= int(stopped_at) < 40 and int(errno_) == 11  # EAGAIN at the limit
    assert results["other"].exit_code == 0, Path(other.stderr_path or "").read_text()
    forked, other_uid = output(other).split("\n")[:2]
    assert forked == "forked 30" and other_uid != bomb_uid
    assert sandbox_uid(other_uid) and sandbox_uid(bomb_uid)
    assert results["late"].exit_code == 0 and output(late) == "late ok\n"
    assert server.stdout == "ok\n"


ALLOCATE = "python3 -c \"import sys; b = bytearray(int(sys.argv[1]) << 20); print('got')\""


def test_memory_is_bounded_by_ram_max_and_the_servers_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = run_blocking(job(tmp_path, "small", f"{ALLOCATE} 50", ram_max_mb=200))
    big_spec = job(tmp_path, "big", f"{ALLOCATE} 400", ram_max_mb=200)
    big = run_blocking(big_spec)
    assert small.exit_code == 0 and big.exit_code == 1
    assert "MemoryError" in Path(big_spec.stderr_path or "").read_text()
    node = job(tmp_path, "node", "node -e 'console.log(1)'", ram_max_mb=128)
    assert run_blocking(node).exit_code == 0  # what a runtime only reserves is not counted
    monkeypatch.setenv("TWIN_SANDBOX_MEMORY_MB", "200")
    twinengine.core.reset()
    default_spec = job(tmp_path, "default", f"{ALLOCATE} 400")
    assert run_blocking(default_spec).exit_code == 1
    shared = job(  # a shared mapping is no data, but it is address space
        tmp_path,
        "shared",
        'python3 -c "import mmap; m = mmap.mmap(-1, 400 << 20); m[-1] = 1"',
    )
    assert run_blocking(shared).exit_code == 1
    declared = job(tmp_path, "declared", f"{ALLOCATE} 400", ram_max_mb=800)
    assert run_blocking(declared).exit_code == 1  # the server's cap wins over ramMax


RAM_TOOL = """cwlVersion: v1.2
class: CommandLineTool
requirements: {{ResourceRequirement: {{ramMax: {ram}}}}}
baseCommand: [python3, -c, "import sys; b = bytearray(int(sys.argv[1]) << 20)"]
inputs:
  mib: {{type: int, inputBinding: {{position: 1}}}}
outputs: []
"""


@pytest.mark.parametrize("native", [True, False], ids=["native", "cwltool"])
def test_a_tools_ram_max_is_its_memory_limit(tmp_path: Path, native: bool) -> None:
    codes = {}
    for ram, mib in ((200, 400), (200, 50), (1000, 400)):
        doc = tmp_path / f"ram-{ram}.cwl"
        doc.write_text(RAM_TOOL.format(ram=ram))
        job_file = write_job(tmp_path / f"ram-{ram}-{mib}.json", {"mib": mib})
        out = tmp_path / f"out-{ram}-{mib}"
        code, _, _ = run_in_process(
            ["--outdir", str(out), str(doc), str(job_file)], sandbox="bwrap", native=native
        )
        codes[(ram, mib)] = code
    assert codes == {(200, 400): 1, (200, 50): 0, (1000, 400): 0}


def test_files_tmp_cpu_core_and_oom_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_SANDBOX_FILE_MB", "1")
    monkeypatch.setenv("TWIN_SANDBOX_TMP_MB", "2")
    twinengine.core.reset()
    spec = job(
        tmp_path,
        "bounded",
        "head -c 2000000 /dev/zero > big; echo big $?; "
        "head -c 900000 /dev/zero > /tmp/a; head -c 900000 /dev/zero > /tmp/b; "
        "head -c 900000 /dev/zero > /tmp/c 2>/dev/null; echo tmp $?; "
        "cat /proc/self/oom_score_adj; grep -E 'Max (cpu time|core file size)' /proc/self/limits",
        timelimit=3,
        cores=2,
    )
    result = run_blocking(spec)
    lines = output(spec).splitlines()
    assert result.exit_code == 0
    assert lines[0] == "big 153"  # killed by SIGXFSZ (128 + 25) at 1 MiB
    assert os.path.getsize(Path(spec.cwd) / "big") == 1 << 20
    assert lines[1] == "tmp 1"  # no space left in a 2 MiB /tmp
    assert lines[2] == "1000"
    assert lines[3].split()[3:5] == ["6", "11"]  # 3 s x 2 cores, SIGKILL 5 s later
    assert lines[4].split()[4:6] == ["0", "0"]


@pytest.mark.skipif(not ROOT, reason="uid leases need a server running as root")
def test_a_uid_is_held_while_its_sandbox_runs_and_the_last_one_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_SANDBOX_UIDS", "2000070000-2000070000")
    twinengine.core.reset()
    executor = LocalExecutor(cores=4, ram_mb=0)
    first = job(tmp_path, "first", "id -u; sleep 2")
    executor.submit(first)
    second = run_blocking(job(tmp_path, "second", "id -u"))
    assert second.exit_code == 127 and "all 1 sandbox uids" in (second.error or "")
    assert "2000070000-2000070000" in (second.error or "")
    while not executor.wait(0.5):
        pass
    executor.close()
    third = job(tmp_path, "third", "id -u")
    assert run_blocking(third).exit_code == 0  # released with its sandbox
    assert output(first) == output(third) == "2000070000\n"


def test_a_uid_range_used_by_accounts_is_refused(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
    subuid = tmp_path / "subuid"
    subuid.write_text("alice:100000:65536\n")
    with pytest.raises(ConfigError, match="account 'nobody'"):
        check_range(65000, 70000, str(passwd), str(subuid))
    with pytest.raises(ConfigError, match="subordinate uids of 'alice'"):
        check_range(165535, 170000, str(passwd), str(subuid))
    check_range(2000000000, 2000065535, str(passwd), str(subuid))
    if ROOT:  # the server's own check reads /etc/passwd
        settings = replace(get_settings(), sandbox_uids=(65000, 65534))
        with pytest.raises(ConfigError, match="account 'nobody'"):
            open_sandbox("bwrap", settings)

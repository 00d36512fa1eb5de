"""What the sandbox adds to one step, measured at the executor (shared by the benchmarks).

:func:`step_cost` runs ``steps`` one-step commands like the ``echo`` template's (``echo``
with its stdout captured in a fresh working folder) through the local executor one after
the other — plainly, in the sandbox ``twin serve`` would use here, and in that sandbox
with the network allowed — and returns, for each, the wall time and the CPU time per
step. CPU is read two ways: the busy jiffies of the whole machine in ``/proc/stat``
(every process counts: other load on the machine inflates it) and, when the cpuacct
cgroup (v1) is writable here, the CPU of this process and every process it started
(bubblewrap, setpriv, slirp4netns, nsenter, ip included). The differences are the
sandbox's cost per step: the uid lease, the folder handed over, the mount plan, bwrap
and setpriv, the limits set while bwrap holds the command — and for a network-allowed
step slirp4netns and the routes. Run alone: ``python benchmarks/sandbox_cost.py
[--steps 300]``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from twinengine.core import get_settings
from twinengine.workflows.executors.base import JobSpec
from twinengine.workflows.executors.local import LocalExecutor
from twinengine.workflows.sandbox import SandboxUnavailableError, server_sandbox

CPUACCT = "/sys/fs/cgroup/cpuacct"


@dataclass
class Cost:
    """Per step, in milliseconds (``cgroup_cpu`` None: not measurable here)."""

    wall: float
    machine_cpu: float
    cgroup_cpu: float | None


def _busy_jiffies() -> int:
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


@contextlib.contextmanager
def _cpuacct() -> Iterator[list[int]]:
    """Nanoseconds of CPU of this process and its children while inside (one value
    appended at the end); nothing appended when the cgroup cannot be used."""
    spent: list[int] = []
    group = os.path.join(CPUACCT, f"twin-sandbox-cost-{os.getpid()}")
    try:
        with open("/proc/self/cgroup", encoding="ascii") as own:
            home = next(line.split(":")[2].strip() for line in own if ":cpuacct" in line)
        os.mkdir(group)
    except (OSError, StopIteration):
        yield spent
        return
    try:
        Path(group, "cgroup.procs").write_text(str(os.getpid()))
        yield spent
        spent.append(int(Path(group, "cpuacct.usage").read_text()))
    finally:
        with contextlib.suppress(OSError):
            Path(CPUACCT + home, "cgroup.procs").write_text(str(os.getpid()))
        for _ in range(50):  # the last children may still be leaving
            with contextlib.suppress(OSError):
                os.rmdir(group)
                break
            time.sleep(0.1)


def _steps(folder: Path, sandbox: str | None, steps: int, network: bool = False) -> Cost:
    folder = Path(tempfile.mkdtemp(dir=folder))
    executor = LocalExecutor(cores=1, ram_mb=0)
    clock = os.sysconf("SC_CLK_TCK")
    with _cpuacct() as spent:
        busy, started = _busy_jiffies(), time.perf_counter()
        for n in range(steps):
            work = folder / str(n)
            work.mkdir()
            executor.submit(
                JobSpec(
                    key=str(n),
                    argv=["echo", f"step {n}"],
                    cwd=str(work),
                    env={"PATH": "/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work)},
                    stdout_path=str(work / "output.txt"),
                    sandbox=sandbox,
                    writable=(str(work),) if sandbox else (),
                    network=network,
                )
            )
            while not (done := executor.wait(5)):
                pass
            if done[0].exit_code != 0:
                raise RuntimeError(f"step {n} failed: {done[0].error or done[0].exit_code}")
        elapsed, busy = time.perf_counter() - started, _busy_jiffies() - busy
    executor.close()
    return Cost(
        wall=elapsed / steps * 1000,
        machine_cpu=busy / clock / steps * 1000,
        cgroup_cpu=spent[0] / steps / 1e6 if spent else None,
    )


def step_cost(steps: int = 300) -> tuple[str, Cost, Cost, Cost | None]:
    """``(sandbox name, plain, sandboxed, network-allowed)`` per step; the last is
    None when network-allowed steps cannot start here."""
    try:
        box = server_sandbox(get_settings())
    except SandboxUnavailableError:
        return "none", Cost(0, 0, None), Cost(0, 0, None), None
    with tempfile.TemporaryDirectory(prefix="twin-sandbox-cost-") as tmp:
        os.environ.setdefault("TWIN_HOME", tmp)
        _steps(Path(tmp), None, 20)  # warm up: imports, page cache
        plain = _steps(Path(tmp), None, steps)
        boxed = _steps(Path(tmp), box.name, steps)
        network = None
        if box.network_problem() is None:
            network = _steps(Path(tmp), box.name, max(20, steps // 3), network=True)
    return box.name, plain, boxed, network


def _line(name: str, cost: Cost, base: Cost) -> str:
    text = f"{name} {cost.wall:.2f} ms wall, {cost.machine_cpu:.2f} ms machine CPU"
    if cost.cgroup_cpu is not None and base.cgroup_cpu is not None:
        text += f", {cost.cgroup_cpu:.2f} ms own CPU (+{cost.cgroup_cpu - base.cgroup_cpu:.2f})"
    return text


def report(steps: int = 300) -> str:
    name, plain, boxed, network = step_cost(steps)
    if name == "none":
        return "sandbox cost per step: no sandbox works here (not measured)"
    text = (
        f"sandbox cost per step ({name}, {steps} echo steps one after the other): "
        f"{_line('plain', plain, plain)}; {_line('sandboxed', boxed, plain)}; added "
        f"{boxed.wall - plain.wall:.2f} ms wall per step"
    )
    if network is not None:
        text += f"; {_line('network-allowed', network, plain)}"
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    print(report(parser.parse_args().steps))

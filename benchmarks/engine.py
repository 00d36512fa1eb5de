"""Engine benchmark: TwinEngine vs ``cwltool --parallel`` on the same files, same run.

Cases (issue #2):
  (a) scatter — a 1000-way scatter of a one-line CommandLineTool (``echo`` to stdout)
  (b) chain   — a 200-step chain of ``cat`` (each step reads the previous output)
  (c) single  — a one-step workflow, end to end

Each case is run ``--repeat`` times per runner as a whole command (process start,
loading, execution, output relocation), the two runners taking turns, and the median
wall time is reported with the ratio cwltool / TwinEngine. Both runners use no
containers; their work folders are on the same file system (the benchmark's temporary
folder holds TWIN_HOME, and cwltool uses the system temporary folder). Usage::

    python benchmarks/engine.py [--repeat 3] [--cases scatter,chain,single] [--n 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ECHO = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  item: {type: string, inputBinding: {position: 1}}
outputs:
  out: stdout
"""

SCATTER = """cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  items: string[]
outputs:
  outs:
    type: File[]
    outputSource: echo/out
steps:
  echo:
    run: echo.cwl
    scatter: item
    in: {item: items}
    out: [out]
"""

CAT = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: cat
inputs:
  infile: {type: File, inputBinding: {position: 1}}
outputs:
  out: stdout
stdout: out.txt
"""


def chain_workflow(length: int) -> str:
    lines = [
        "cwlVersion: v1.2",
        "class: Workflow",
        "inputs:",
        "  infile: File",
        "outputs:",
        "  out:",
        "    type: File",
        f"    outputSource: step{length}/out",
        "steps:",
    ]
    for i in range(1, length + 1):
        source = "infile" if i == 1 else f"step{i - 1}/out"
        lines += [
            f"  step{i}:",
            "    run: cat.cwl",
            f"    in: {{infile: {source}}}",
            "    out: [out]",
        ]
    return "\n".join(lines) + "\n"


SINGLE = """cwlVersion: v1.2
class: Workflow
inputs:
  item: string
outputs:
  out:
    type: File
    outputSource: echo/out
steps:
  echo:
    run: echo.cwl
    in: {item: item}
    out: [out]
"""


def write_cases(folder: Path, n: int, chain: int) -> dict[str, tuple[str, str]]:
    (folder / "echo.cwl").write_text(ECHO)
    (folder / "cat.cwl").write_text(CAT)
    (folder / "scatter.cwl").write_text(SCATTER)
    (folder / "scatter-job.json").write_text(json.dumps({"items": [f"item{i}" for i in range(n)]}))
    (folder / "chain.cwl").write_text(chain_workflow(chain))
    (folder / "input.txt").write_text("the digital twin says hello\n" * 100)
    (folder / "chain-job.json").write_text(
        json.dumps({"infile": {"class": "File", "location": "input.txt"}})
    )
    (folder / "single.cwl").write_text(SINGLE)
    (folder / "single-job.json").write_text(json.dumps({"item": "hello"}))
    return {
        "scatter": ("scatter.cwl", "scatter-job.json"),
        "chain": ("chain.cwl", "chain-job.json"),
        "single": ("single.cwl", "single-job.json"),
    }


def runner_commands(bindir: Path) -> dict[str, list[str]]:
    def exe(name: str) -> str:
        path = bindir / name
        return str(path) if path.exists() else (shutil.which(name) or name)

    return {
        "cwltool --parallel": [exe("cwltool"), "--parallel", "--no-container", "--quiet"],
        "twin run": [exe("twin"), "run", "--quiet"],
    }


def time_command(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    json.loads(proc.stdout)  # both must print the CWL output object
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description="TwinEngine vs cwltool --parallel")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cases", default="scatter,chain,single")
    parser.add_argument("--n", type=int, default=1000, help="scatter width")
    parser.add_argument("--chain", type=int, default=200, help="chain length")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    bindir = Path(sys.executable).parent
    runners = runner_commands(bindir)
    with tempfile.TemporaryDirectory(prefix="twin-bench-") as tmp:
        folder = Path(tmp)
        files = write_cases(folder, args.n, args.chain)
        env = dict(os.environ, TWIN_HOME=str(folder / "twin-home"))
        env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
        # warm the file-system cache and create the TwinEngine database once
        time_command([*runners["twin run"], "single.cwl", "single-job.json"], folder, env)
        results: dict[str, dict[str, list[float]]] = {}
        for case in cases:
            workflow, job = files[case]
            results[case] = {name: [] for name in runners}
            # interleaved (cwltool, twin, cwltool, twin …): a machine whose speed drifts
            # over minutes weighs on both runners alike
            for i in range(args.repeat):
                for name, cmd in runners.items():
                    outdir = folder / f"out-{case}-{name.split()[0]}-{i}"
                    full = [*cmd, f"--outdir={outdir}", workflow, job]
                    results[case][name].append(time_command(full, folder, env))
                    shutil.rmtree(outdir, ignore_errors=True)
            for name, times in results[case].items():
                print(f"{case:8} {name:20} " + " ".join(f"{t:6.2f}s" for t in times), flush=True)
    print()
    print(f"{'case':8} {'cwltool --parallel':>19} {'twin run':>10} {'speed-up':>9}")
    labels = {
        "scatter": f"(a) {args.n}-way scatter of echo",
        "chain": f"(b) {args.chain}-step chain of cat",
        "single": "(c) one-step workflow",
    }
    for case in cases:
        ref = statistics.median(results[case]["cwltool --parallel"])
        twin = statistics.median(results[case]["twin run"])
        print(f"{case:8} {ref:18.2f}s {twin:9.2f}s {ref / twin:8.1f}x   {labels[case]}")
    print("\nmedian wall time of whole commands; same machine, same files, same run")
    return 0


if __name__ == "__main__":
    sys.exit(main())

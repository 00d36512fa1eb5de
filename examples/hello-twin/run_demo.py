"""`make demo`: run the hello-twin workflow on the embedded defaults and say where things are.

Runs ``twin run workflow.cwl job.yml`` (SQLite metadata, local object store, local
executor, all under ``TWIN_HOME``), then prints the output folder, the step logs and
the run record, read back from the database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    bindir = Path(sys.executable).parent
    env = dict(os.environ)
    # the steps run `python3`: make it this environment's interpreter (it has matplotlib)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    twin = str(bindir / "twin")
    print(f"TWIN_HOME = {env.get('TWIN_HOME', '~/.twinengine')}\n", flush=True)
    proc = subprocess.run(
        [twin, "run", "--name", "hello-twin", str(HERE / "workflow.cwl"), str(HERE / "job.yml")],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        print(proc.stdout)
        print(f"the demo workflow failed (exit {proc.returncode})", file=sys.stderr)
        return proc.returncode
    outputs = json.loads(proc.stdout)
    print(proc.stdout)

    os.environ.update(env)
    from twinengine.workflows import RunStore

    store = RunStore()
    run = store.list(limit=1)[0]
    steps = store.steps(run["id"])
    print("=" * 72)
    print(f"run {run['id']} {run['state']} ({len(steps)} steps)")
    print(f"  outputs      {run['outdir']}")
    for name, value in outputs.items():
        shown = value["path"] if isinstance(value, dict) and "path" in value else value
        print(f"    {name:18} {shown}")
    print("  step logs:")
    for step in steps:
        print(f"    {step['name']:32} {step['stderr_uri']}")
    print(f"  run record   {run['id']} in {store.db.engine.url}")
    from twinengine.provenance import ProvStore

    prov = ProvStore(store.db)
    graph = prov.load(prov.document_of_run(run["id"]))
    print(
        f"  provenance   {len(graph.elements)} PROV elements, {len(graph.relations)} relations"
        f" (twin prov show {run['id']})"
    )
    plot = outputs.get("plot_png")
    if isinstance(plot, dict) and plot.get("path"):
        print(f"\nwhere the plot came from: twin prov lineage {plot['path']}")
    print(f"next: twin runs show {run['id']}   |   twin runs logs {run['id']} plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())

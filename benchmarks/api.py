"""API load benchmark: many clients launching one-step runs through ``twin serve``.

Starts ``twin serve`` on a fresh TWIN_HOME (embedded SQLite, at most ``--parallel`` runs
executing at once: TWIN_MAX_RUNS), registers the ``echo`` template, then ``--clients``
concurrent clients (asyncio, one ``httpx.AsyncClient`` and connection each) launch
``--runs`` one-step runs in total (``POST /api/v1/runs``) and poll each one with
``GET /api/v1/runs/{id}`` every ``--poll`` seconds until it is final. It reports the runs
by final state, the wall time from the first launch to the last final state, runs/s,
p50/p99 latency of the POSTs and of the GETs as the clients saw them, and the server's
``/metrics`` at the end. It exits non-zero if a run is lost (a launch or poll failed,
or a run never ended) or did not succeed.

Peer, measured in the same run on the same machine: the same one-step runs launched as
``cwltool --quiet echo.cwl job.json`` subprocesses (one job file per run, one output
folder each), at most ``--parallel`` at once, as the server runs them. cwltool takes
about a second per run here, so by default the peer runs ``--peer-runs`` (100) of them
and the ratio is taken on runs/s; the wall time it would take for ``--runs`` is printed
as an extrapolation.

The sandbox: by default (``--sandbox both``) the load runs twice on fresh homes, with
``TWIN_SANDBOX=none`` and with the sandbox ``twin serve`` picks here, and the report
gives runs/s of both and the cost the sandbox adds to each one-step run; the cost per
step measured at the executor (:mod:`sandbox_cost`) is printed with it. Usage::

    python benchmarks/api.py [--clients 50] [--runs 500] [--peer-runs 100] [--poll 0.25]
                             [--sandbox both|auto|bwrap|none]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sandbox_cost import report as sandbox_report  # benchmarks/sandbox_cost.py

from twinengine.api.process import ServeProcess

ROOT = Path(__file__).resolve().parents[1]
ECHO = ROOT / "src/twinengine/workflows/templates/echo.cwl"
FINAL = {"succeeded", "failed", "cancelled", "interrupted"}


def exe(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Load:
    states: Counter[str] = field(default_factory=Counter)
    post: list[float] = field(default_factory=list)
    get: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    wall: float = 0.0


async def client_loop(
    url: str, token: str, workflow: str, numbers: asyncio.Queue[int], poll: float, load: Load
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        while True:
            try:
                n = numbers.get_nowait()
            except asyncio.QueueEmpty:
                return
            body = {"workflow": workflow, "inputs": {"message": f"run {n}"}}
            try:
                started = time.perf_counter()
                answer = await client.post("/api/v1/runs", json=body)
                load.post.append(time.perf_counter() - started)
                if answer.status_code != 201:
                    load.errors.append(f"POST run {n}: {answer.status_code} {answer.text[:200]}")
                    continue
                run_id = answer.json()["id"]
                state = answer.json()["state"]
                while state not in FINAL:
                    await asyncio.sleep(poll)
                    started = time.perf_counter()
                    answer = await client.get(f"/api/v1/runs/{run_id}")
                    load.get.append(time.perf_counter() - started)
                    if answer.status_code != 200:
                        load.errors.append(
                            f"GET {run_id}: {answer.status_code} {answer.text[:200]}"
                        )
                        break
                    state = answer.json()["state"]
                load.states[state] += 1
                if state != "succeeded":  # ask again: was that the run's last word?
                    first = {k: answer.json().get(k) for k in ("state", "error", "ended_at")}
                    await asyncio.sleep(1.0)
                    again = (await client.get(f"/api/v1/runs/{run_id}")).json()
                    again = {k: again.get(k) for k in ("state", "error", "ended_at")}
                    load.errors.append(f"GET /api/v1/runs/{run_id}: {first}; 1 s later {again}")
            except httpx.HTTPError as exc:
                load.errors.append(f"run {n}: {type(exc).__name__}: {exc}")


async def run_load(server: ServeProcess, workflow: str, args: argparse.Namespace) -> Load:
    load = Load()
    numbers: asyncio.Queue[int] = asyncio.Queue()
    for n in range(args.runs):
        numbers.put_nowait(n)
    started = time.perf_counter()
    clients = [
        client_loop(server.url, server.token, workflow, numbers, args.poll, load)
        for _ in range(args.clients)
    ]
    await asyncio.wait_for(asyncio.gather(*clients), args.timeout)
    load.wall = time.perf_counter() - started
    return load


def metrics_summary(text: str) -> list[str]:
    """The counters of ``/metrics`` worth printing: requests by route, runs, queue."""
    requests: Counter[str] = Counter()
    seconds: dict[str, list[float]] = {}
    lines = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("twin_http_requests_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', name))
            requests[f"{labels['method']} {labels['route']} {labels['status']}"] += float(value)
        elif name.startswith(
            ("twin_http_request_seconds_sum{", "twin_http_request_seconds_count{")
        ):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', name))
            key = f"{labels['method']} {labels['route']}"
            pair = seconds.setdefault(key, [0.0, 0.0])
            pair[0 if "_sum{" in name else 1] += float(value)
        elif name.startswith(("twin_runs", "twin_dispatch_queue")) and not name.endswith(
            "_created"
        ):
            lines.append(f"  {name} {float(value):g}")
    out = ["twin_http_requests_total (method route status: count, server-side mean):"]
    for key, count in requests.most_common():
        method_route = key.rsplit(" ", 1)[0]
        total, n = seconds.get(method_route, [0.0, 0.0])
        mean = f"{total / n * 1000:.1f} ms" if n else "-"
        out.append(f"  {key}: {count:g}  ({mean})")
    return out + lines


def run_server_side(args: argparse.Namespace, home: Path, sandbox: str) -> tuple[Load, list[str]]:
    env = {"TWIN_MAX_RUNS": str(args.parallel), "TWIN_SANDBOX": sandbox}
    server = ServeProcess(home, env=env).start()
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=60
        ) as client:
            answer = client.post(
                "/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())}
            )
            answer.raise_for_status()
            workflow = answer.json()["id"]
            load = asyncio.run(run_load(server, workflow, args))
            metrics = client.get("/metrics")
            metrics.raise_for_status()
        return load, metrics_summary(metrics.text)
    finally:
        server.stop()


async def run_peer(folder: Path, runs: int, parallel: int) -> tuple[float, Counter[str]]:
    """``runs`` cwltool processes, at most ``parallel`` at once; wall time and exit codes."""
    cwltool = exe("cwltool")
    slots = asyncio.Semaphore(parallel)
    codes: Counter[str] = Counter()

    async def one(n: int) -> None:
        job = folder / f"job-{n}.json"
        job.write_text(json.dumps({"message": f"run {n}"}))
        outdir = folder / f"out-{n}"
        async with slots:
            child = await asyncio.create_subprocess_exec(
                cwltool,
                "--quiet",
                f"--outdir={outdir}",
                str(ECHO),
                str(job),
                cwd=folder,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await child.communicate()
        ok = child.returncode == 0 and (outdir / "output.txt").is_file()
        codes["succeeded" if ok else f"failed ({child.returncode})"] += 1
        if not ok:
            print(f"cwltool run {n} failed:\n{err.decode()[-1000:]}", file=sys.stderr)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(runs)))
    return time.perf_counter() - started, codes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--poll", type=float, default=0.25, help="seconds between GETs of a run")
    parser.add_argument(
        "--parallel",
        type=int,
        default=max(2, os.cpu_count() or 1),
        help="runs executing at once, server (TWIN_MAX_RUNS) and peer alike",
    )
    parser.add_argument("--peer-runs", type=int, default=100, help="0: no peer")
    parser.add_argument("--timeout", type=float, default=900, help="limit for the whole load")
    parser.add_argument(
        "--sandbox",
        choices=("both", "auto", "bwrap", "podman", "none"),
        default="both",
        help="TWIN_SANDBOX of the server; both: none and auto, one after the other",
    )
    args = parser.parse_args()
    sandboxes = ["none", "auto"] if args.sandbox == "both" else [args.sandbox]
    print(
        f"{args.clients} clients, {args.runs} one-step runs (echo), poll every {args.poll} s, "
        f"{args.parallel} runs at once",
        flush=True,
    )
    loads: dict[str, Load] = {}
    with tempfile.TemporaryDirectory(prefix="twin-api-bench-") as tmp:
        folder = Path(tmp)
        for sandbox in sandboxes:
            (folder / f"home-{sandbox}").mkdir()
            load, metrics = run_server_side(args, folder / f"home-{sandbox}", sandbox)
            loads[sandbox] = load
            print(
                f"twin serve (sandbox {sandbox}): {load.wall:.1f} s, {dict(load.states)}",
                flush=True,
            )
        peer_wall, peer_codes = 0.0, Counter[str]()
        if args.peer_runs:
            (folder / "peer").mkdir()
            peer_wall, peer_codes = asyncio.run(
                run_peer(folder / "peer", args.peer_runs, args.parallel)
            )
            print(f"cwltool: {peer_wall:.1f} s, {dict(peer_codes)}", flush=True)

    print()
    print(f"{'runner':28} {'runs':>5} {'wall':>8} {'runs/s':>7}")
    for sandbox, each in loads.items():
        each_rate = each.states["succeeded"] / each.wall if each.wall else 0.0
        print(
            f"{'twin serve, sandbox ' + sandbox:28} {args.runs:5} "
            f"{each.wall:7.1f}s {each_rate:7.2f}"
        )
    finished = sum(load.states.values())
    rate = load.states["succeeded"] / load.wall if load.wall else 0.0
    if args.peer_runs:
        peer_rate = peer_codes["succeeded"] / peer_wall
        print(
            f"{'cwltool --quiet (subprocess)':28} {args.peer_runs:5} {peer_wall:7.1f}s "
            f"{peer_rate:7.2f}"
        )
        print(f"{'cwltool, extrapolated':28} {args.runs:5} {args.runs / peer_rate:7.1f}s")
        print(f"speed-up (runs/s, twin serve / cwltool): {rate / peer_rate:.1f}x")
    print()
    if "none" in loads and len(loads) > 1:
        added = (load.wall - loads["none"].wall) / args.runs * args.parallel * 1000
        print(
            f"sandbox cost per one-step run, end to end: {added:.1f} ms of a run slot "
            f"((wall with - wall without) / runs x {args.parallel} runs at once)"
        )
    print(sandbox_report(200))
    print()
    print(
        f"runs launched {args.runs}, finished {finished} (sandbox {sandboxes[-1]}): "
        + ", ".join(f"{state} {count}" for state, count in sorted(load.states.items()))
    )
    print(f"{'request':24} {'count':>6} {'p50':>9} {'p99':>9}")
    for name, times in (("POST /api/v1/runs", load.post), ("GET /api/v1/runs/{id}", load.get)):
        if times:
            print(
                f"{name:24} {len(times):6} {statistics.median(times) * 1000:7.1f}ms "
                f"{percentile(times, 0.99) * 1000:7.1f}ms"
            )
    print("\nserver /metrics at the end:")
    print("\n".join(metrics))
    failed = any(each.errors or each.states["succeeded"] != args.runs for each in loads.values())
    if args.peer_runs and peer_codes["succeeded"] != args.peer_runs:
        failed = True
    for error in [e for each in loads.values() for e in each.errors][:20]:
        print(f"error: {error}", file=sys.stderr)
    if failed:
        print(
            f"\nFAILED: {args.runs - load.states['succeeded']} runs lost or not succeeded",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: TwinEngine's ONNX model server against ``mlflow models serve``.

Exports an MLP 16→64→64→1 with ``torch.onnx.export``, serves it (a) with
``python -m twinengine.ai.serving`` and (b) with ``mlflow models serve --env-manager
local`` after logging it with ``mlflow.onnx.log_model`` to a temporary file tracking
store, and drives both with the same lean load generator: raw asyncio streams, one
keep-alive HTTP/1.1 connection per virtual user, one-row JSON requests
(``{"inputs": [[...]]}``, which both servers accept), at concurrency 1, 8 and 32 for a
fixed duration each. Prints requests/s and p50/p99 latency per server and concurrency,
and TwinEngine's ratios. Run: ``python benchmarks/serving.py [--duration 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np


def export_model(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(16, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 1),
    ).eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, 16),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        dynamo=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


async def _user(port: int, request: bytes, until: float, lat: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"bad answer: {head!r} {body!r}")
            lat.append(time.perf_counter() - t0)
    finally:
        writer.close()


async def load(port: int, path: str, concurrency: int, duration: float) -> dict[str, float]:
    row = np.random.default_rng(0).normal(size=(1, 16)).round(4).tolist()
    body = json.dumps({"inputs": row}).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    # warm up, then measure
    await asyncio.gather(
        *(_user(port, request, time.perf_counter() + 0.5, []) for _ in range(concurrency))
    )
    lat: list[float] = []
    t0 = time.perf_counter()
    until = t0 + duration
    await asyncio.gather(*(_user(port, request, until, lat) for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    ms = np.array(lat) * 1000
    return {
        "rps": len(lat) / elapsed,
        "p50": float(np.percentile(ms, 50)),
        "p99": float(np.percentile(ms, 99)),
    }


def start_twin(model: Path, port: int, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "twinengine.ai.serving", str(model), "--port", str(port)]
    return subprocess.Popen(cmd, env=env)


def start_mlflow(model: Path, port: int, env: dict, tmp: Path) -> subprocess.Popen:
    import mlflow
    import onnx

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("serving-benchmark", (tmp / "artifacts").as_uri())
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.onnx.log_model(onnx.load(model), name="model")
    env = {**env, "MLFLOW_TRACKING_URI": uri}
    cmd = [
        "mlflow", "models", "serve", "-m", f"runs:/{run.info.run_id}/model",
        "-p", str(port), "--env-manager", "local", "--host", "127.0.0.1",
    ]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--skip-twin", action="store_true")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    results: dict[str, dict[int, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        model = tmp / "mlp.onnx"
        export_model(model)
        servers = [] if args.skip_twin else [("twinengine", start_twin, "/health", "/predict")]
        if not args.skip_mlflow:
            servers.append(("mlflow", start_mlflow, "/ping", "/invocations"))
        for name, start, ready, path in servers:
            port = free_port()
            proc = start(model, port, env) if name == "twinengine" else start(model, port, env, tmp)
            try:
                wait_ready(f"http://127.0.0.1:{port}{ready}", proc)
                results[name] = {}
                for c in levels:
                    results[name][c] = asyncio.run(load(port, path, c, args.duration))
                    r = results[name][c]
                    print(
                        f"{name:<11} c={c:<3} {r['rps']:8.0f} req/s  "
                        f"p50 {r['p50']:6.2f} ms  p99 {r['p99']:6.2f} ms",
                        flush=True,
                    )
            finally:
                stop(proc)
    print("\n| server | concurrency | req/s | p50 ms | p99 ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, by_c in results.items():
        for c, r in by_c.items():
            print(f"| {name} | {c} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} |")
    if "mlflow" in results and "twinengine" in results:
        print("\n| concurrency | throughput ratio | p99 ratio (mlflow / twin) |")
        print("| ---: | ---: | ---: |")
        for c in levels:
            t, m = results["twinengine"][c], results["mlflow"][c]
            print(f"| {c} | {t['rps'] / m['rps']:.1f}x | {m['p99'] / t['p99']:.1f}x |")


if __name__ == "__main__":
    main()

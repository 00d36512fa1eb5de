"""Benchmark: `twin train` throughput with 1 and with 2 DDP processes on the CPU.

Writes a fixed synthetic regression set (``--rows`` x 32 float features, NPZ) and trains
the same MLP 32→256→256→1 (Adam, global batch ``--batch-size``) through
:func:`twinengine.ai.distributed.launch` — in this process for 1, with torchrun and
gloo for 2 — tracked in a scratch MLflow store. Samples/s come from the epoch-end
timestamps MLflow records, from the end of epoch 1 to the end of the last epoch, so
process start-up, the rendezvous and the first (warm-up) epoch are left out; each epoch
includes rank 0's evaluation. One process uses every core (torch's default), each of N
processes cores/N threads (``OMP_NUM_THREADS``), so the ratio shows what DDP buys on this
machine rather than a scaling target. Run: ``python benchmarks/training.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

FEATURES = 32


def write_dataset(folder: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, FEATURES)).astype(np.float32)
    w = rng.normal(size=FEATURES) / np.sqrt(FEATURES)
    y = np.tanh(x @ w) + rng.normal(0, 0.05, rows)
    np.savez(folder / "data.npz", x=x, y=y.astype(np.float32))


def write_config(folder: Path, epochs: int, batch_size: int, hidden: int) -> Path:
    path = folder / "config.yaml"
    path.write_text(
        f"model: {{name: mlp, hidden: [{hidden}, {hidden}]}}\n"
        "data: {path: data.npz, features: x, target: y, val_fraction: 0.05}\n"
        "loss: mse\n"
        "optimizer: {name: adam, lr: 0.001}\n"
        f"trainer: {{epochs: {epochs}, batch_size: {batch_size}, checkpoint_every: {epochs},"
        " log_every_n_steps: 1000000, onnx: false}\n"
        "tracking: {experiment: training-benchmark, tensorboard: false, provenance: false}\n"
    )
    return path


def measure(config: Path, nproc: int) -> dict[str, float]:
    from mlflow import MlflowClient

    from twinengine.ai.data import load_data
    from twinengine.ai.distributed import launch

    t0 = time.perf_counter()
    result = launch(config, [], nproc=nproc)
    wall = time.perf_counter() - t0
    client = MlflowClient(tracking_uri=result.tracking_uri)
    ends = {m.step: m.timestamp for m in client.get_metric_history(result.run_id, "val_loss")}
    epochs = result.epochs_done
    seconds = (ends[epochs] - ends[1]) / 1000
    samples = len(load_data({"path": config.parent / "data.npz", "features": "x",
                             "target": "y", "val_fraction": 0.05}).x_train)  # fmt: skip
    return {
        "samples_per_s": samples * (epochs - 1) / seconds,
        "epoch_s": seconds / (epochs - 1),
        "wall_s": wall,
        "val_loss": result.history[-1]["val_loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--nproc", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--quick", action="store_true", help="a small run (a smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.epochs = 8_000, 3
    levels = [int(n) for n in args.nproc.split(",")]
    cores = os.cpu_count() or 1
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="twin-train-bench-") as tmp:
        folder = Path(tmp)
        os.environ["TWIN_HOME"] = str(folder / "home")
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        write_dataset(folder, args.rows)
        config = write_config(folder, args.epochs, args.batch_size, args.hidden)
        for nproc in levels:
            results[nproc] = r = measure(config, nproc)
            print(
                f"nproc={nproc}  {r['samples_per_s']:9.0f} samples/s  "
                f"{r['epoch_s']:6.2f} s/epoch  wall {r['wall_s']:5.1f} s  "
                f"val_loss {r['val_loss']:.4f}",
                flush=True,
            )
    print(
        f"\n{args.rows} rows x {FEATURES} features, MLP {FEATURES}-{args.hidden}-{args.hidden}-1, "
        f"global batch {args.batch_size}, {args.epochs} epochs, {cores} CPU cores"
    )
    print("\n| processes | threads each | samples/s | s/epoch | wall s (with start-up) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for nproc, r in results.items():
        threads = cores if nproc == 1 else max(1, cores // nproc)
        print(
            f"| {nproc} | {threads} | {r['samples_per_s']:.0f} | {r['epoch_s']:.2f} "
            f"| {r['wall_s']:.1f} |"
        )
    if 1 in results and len(results) > 1:
        base = results[1]["samples_per_s"]
        for nproc, r in results.items():
            if nproc != 1:
                print(f"\n{nproc} processes / 1: {r['samples_per_s'] / base:.2f}x samples/s")


if __name__ == "__main__":
    main()

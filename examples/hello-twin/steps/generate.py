#!/usr/bin/env python3
"""Synthesise a river-gauge water-level series (metres) and write it as CSV.

The signal is a base level, a slow flood wave, a daily (diurnal) cycle and Gaussian
sensor noise, sampled every ``--interval-minutes`` from a fixed start time. A few
isolated spikes (sensor glitches) are injected so the cleaning step has work to do.
Only the Python standard library is used.

Output CSV columns: ``timestamp`` (ISO 8601, UTC) and ``value``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
from datetime import UTC, datetime, timedelta

START = datetime(2024, 1, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=4320, help="number of samples")
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    parser.add_argument("--spikes", type=int, default=8, help="number of injected spikes")
    parser.add_argument("--interval-minutes", type=int, default=10, help="sampling interval")
    parser.add_argument("--output", default="raw.csv", help="CSV file to write")
    args = parser.parse_args()

    if args.samples < 1:
        parser.error("--samples must be at least 1")
    if args.interval_minutes < 1:
        parser.error("--interval-minutes must be at least 1")
    if not 0 <= args.spikes <= args.samples // 3:
        parser.error("--spikes must be between 0 and samples/3")

    rng = random.Random(args.seed)
    step = timedelta(minutes=args.interval_minutes)
    per_day = 24 * 60 / args.interval_minutes

    values = []
    for i in range(args.samples):
        days = i / per_day
        level = (
            1.20  # base level
            + 0.35 * math.sin(2 * math.pi * days / 12.0)  # slow flood wave, 12-day period
            + 0.06 * math.sin(2 * math.pi * days - 0.8)  # diurnal cycle
            + rng.gauss(0.0, 0.015)  # sensor noise
        )
        values.append(level)

    # Spikes at distinct, non-adjacent positions (away from the ends), up or down.
    spike_at: set[int] = set()
    candidates = list(range(5, args.samples - 5)) if args.samples > 10 else []
    while len(spike_at) < args.spikes and candidates:
        i = rng.choice(candidates)
        if any(abs(i - j) < 3 for j in spike_at):
            candidates.remove(i)
            continue
        spike_at.add(i)
        candidates.remove(i)
    for i in sorted(spike_at):
        values[i] += rng.choice((-1, 1)) * rng.uniform(0.5, 1.2)

    with open(args.output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        for i, value in enumerate(values):
            stamp = (START + i * step).strftime("%Y-%m-%dT%H:%M:%SZ")
            writer.writerow([stamp, f"{value:.4f}"])

    print(
        json.dumps(
            {
                "samples": args.samples,
                "spikes": len(spike_at),
                "seed": args.seed,
                "output": args.output,
            }
        )
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Plot the raw, cleaned and aggregated series to a PNG (matplotlib, Agg backend).

Top panel: the raw series with the points the cleaning step removed marked.
Bottom panel: the cleaned series with the aggregated mean and its min-max band.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
from datetime import UTC, datetime

os.environ.setdefault("MPLBACKEND", "Agg")
import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt


def parse(stamp: str) -> datetime:
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def read(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw")
    parser.add_argument("cleaned")
    parser.add_argument("aggregated")
    parser.add_argument("--title", default="hello-twin: river gauge water level")
    parser.add_argument("--ylabel", default="water level [m]")
    parser.add_argument("--output", default="timeseries.png")
    args = parser.parse_args()

    raw = read(args.raw)
    cleaned = read(args.cleaned)
    agg = read(args.aggregated)

    raw_t = [parse(r["timestamp"]) for r in raw]
    raw_v = [float(r["value"]) for r in raw]
    kept = {r["timestamp"] for r in cleaned}
    out_t = [t for t, r in zip(raw_t, raw, strict=True) if r["timestamp"] not in kept]
    out_v = [v for v, r in zip(raw_v, raw, strict=True) if r["timestamp"] not in kept]
    clean_t = [parse(r["timestamp"]) for r in cleaned]
    clean_v = [float(r["value"]) for r in cleaned]
    agg_t = [parse(r["period_start"]) for r in agg]
    agg_mean = [float(r["mean"]) for r in agg]
    agg_min = [float(r["min"]) for r in agg]
    agg_max = [float(r["max"]) for r in agg]

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 7), sharex=True, constrained_layout=True)
    fig.suptitle(args.title, fontsize=14)

    top.plot(raw_t, raw_v, color="0.55", linewidth=0.7, label=f"raw ({len(raw)} samples)")
    top.scatter(
        out_t,
        out_v,
        color="crimson",
        marker="x",
        s=40,
        zorder=3,
        label=f"removed outliers ({len(out_t)})",
    )
    top.set_title("Raw series and detected outliers", fontsize=11)
    top.set_ylabel(args.ylabel)
    top.grid(True, alpha=0.3)
    top.margins(y=0.15)
    top.legend(loc="upper center", ncol=2)

    bottom.plot(
        clean_t,
        clean_v,
        color="tab:blue",
        linewidth=0.7,
        alpha=0.8,
        label=f"cleaned ({len(cleaned)} samples)",
    )
    if agg_t:
        # Step plot: each aggregate holds from its period start to the next one.
        period = min(b - a for a, b in itertools.pairwise(agg_t)) if len(agg_t) > 1 else None
        end = agg_t[-1] + period if period else max(clean_t or agg_t)
        edges = mdates.date2num([*agg_t, end])
        bottom.stairs(
            agg_max,
            edges,
            baseline=agg_min,
            fill=True,
            color="tab:orange",
            alpha=0.25,
            label="aggregated min–max",
        )
        bottom.stairs(
            agg_mean,
            edges,
            baseline=None,
            color="tab:orange",
            linewidth=2,
            label=f"aggregated mean ({len(agg)} periods)",
        )
    bottom.set_title("Cleaned series and aggregates", fontsize=11)
    bottom.set_ylabel(args.ylabel)
    bottom.set_xlabel("time (UTC)")
    bottom.grid(True, alpha=0.3)
    shown = clean_v + agg_min + agg_max
    if shown:
        low, high = min(shown), max(shown)
        pad = 0.05 * (high - low) or 0.1
        bottom.set_ylim(low - pad, high + 0.3 * (high - low) + pad)  # room for the legend
    bottom.legend(loc="upper center", ncol=3)
    bottom.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d"))
    fig.autofmt_xdate()

    fig.savefig(args.output, dpi=100)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Remove outliers from a ``timestamp,value`` CSV with a rolling median and MAD.

For each point the median of a centred window of ``--window`` samples and the median
absolute deviation (MAD) around it are computed; the robust z-score is
``|x - median| / (1.4826 * MAD)``. Points whose score exceeds ``--threshold`` are
dropped. Writes the cleaned CSV, a JSON report, and ``cwl.output.json`` so that the
number of removed points is a plain CWL ``int`` output (no JavaScript needed).
Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its sigma
IANA = "https://www.iana.org/assignments/media-types/"  # file formats, as in workflow.cwl


def read_series(path: str) -> list[tuple[str, float]]:
    with open(path, newline="") as handle:
        return [(row["timestamp"], float(row["value"])) for row in csv.DictReader(handle)]


def robust_scores(values: list[float], window: int) -> list[float]:
    half = window // 2
    n = len(values)
    medians, mads = [], []
    for i in range(n):
        chunk = values[max(0, i - half) : min(n, i + half + 1)]
        med = statistics.median(chunk)
        medians.append(med)
        mads.append(statistics.median(abs(v - med) for v in chunk))
    # A window of identical values has MAD 0: fall back to the series' typical MAD.
    positive = [m for m in mads if m > 0]
    floor = statistics.median(positive) if positive else 1e-12
    return [
        abs(v - med) / (MAD_TO_SIGMA * (mad if mad > 0 else floor))
        for v, med, mad in zip(values, medians, mads, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input", help="raw CSV (timestamp,value)")
    parser.add_argument("--window", type=int, default=25, help="rolling window, samples")
    parser.add_argument("--threshold", type=float, default=5.0, help="robust z-score limit")
    parser.add_argument("--output", default="cleaned.csv")
    parser.add_argument("--report", default="clean_report.json")
    args = parser.parse_args()
    if args.window < 3:
        parser.error("--window must be at least 3")
    if args.threshold <= 0:
        parser.error("--threshold must be positive")

    series = read_series(args.input)
    scores = robust_scores([v for _, v in series], args.window)

    kept, removed = [], []
    for (stamp, value), score in zip(series, scores, strict=True):
        (removed if score > args.threshold else kept).append((stamp, value, score))

    with open(args.output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "value"])
        for stamp, value, _ in kept:
            writer.writerow([stamp, f"{value:.4f}"])

    report = {
        "input_points": len(series),
        "kept": len(kept),
        "removed": len(removed),
        "window": args.window,
        "threshold": args.threshold,
        "outliers": [{"timestamp": s, "value": v, "score": round(z, 2)} for s, v, z in removed],
    }
    with open(args.report, "w") as handle:
        json.dump(report, handle, indent=2)

    # CWL: when the tool writes cwl.output.json, it *is* the output object.
    cwd = os.getcwd()
    outputs = {
        "cleaned": {
            "class": "File",
            "path": os.path.join(cwd, args.output),
            "format": IANA + "text/csv",
        },
        "report": {
            "class": "File",
            "path": os.path.join(cwd, args.report),
            "format": IANA + "application/json",
        },
        "removed": len(removed),
    }
    with open("cwl.output.json", "w") as handle:
        json.dump(outputs, handle)

    print(f"removed {len(removed)} of {len(series)} points (threshold {args.threshold})")


if __name__ == "__main__":
    main()

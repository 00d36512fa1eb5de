#!/usr/bin/env python3
"""Aggregate a ``timestamp,value`` CSV into fixed periods (mean, min, max, count).

Periods are ``--period-minutes`` long (1440 = daily, 60 = hourly) and aligned to
the Unix epoch, so hourly and daily periods start on the hour / at midnight UTC.
Output CSV columns: ``period_start, mean, min, max, count``.
Only the Python standard library is used.
"""

from __future__ import annotations

import argparse
import csv
import statistics
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse(stamp: str) -> datetime:
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input", help="CSV (timestamp,value)")
    parser.add_argument("--period-minutes", type=int, default=1440, help="bucket length")
    parser.add_argument("--output", default="aggregated.csv")
    args = parser.parse_args()
    if args.period_minutes < 1:
        parser.error("--period-minutes must be at least 1")

    period = timedelta(minutes=args.period_minutes)
    buckets: dict[datetime, list[float]] = {}
    with open(args.input, newline="") as handle:
        for row in csv.DictReader(handle):
            when = parse(row["timestamp"])
            start = EPOCH + ((when - EPOCH) // period) * period
            buckets.setdefault(start, []).append(float(row["value"]))

    with open(args.output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["period_start", "mean", "min", "max", "count"])
        for start in sorted(buckets):
            values = buckets[start]
            writer.writerow(
                [
                    start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    f"{statistics.fmean(values):.4f}",
                    f"{min(values):.4f}",
                    f"{max(values):.4f}",
                    len(values),
                ]
            )
    print(f"{len(buckets)} periods of {args.period_minutes} min written to {args.output}")


if __name__ == "__main__":
    main()

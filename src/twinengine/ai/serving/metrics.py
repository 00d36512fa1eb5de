"""Per-deployment serving metrics in the Prometheus text format, and a threshold alert.

:class:`ServingMetrics` counts requests by status, keeps a latency histogram and a
batch-size histogram, and running sums of every input feature (the columns of the
first input, flattened past the batch axis) so that ``/metrics`` reports each feature's
mean and standard deviation — the raw material for drift monitoring. Counting is a few
integer and NumPy operations per batch, cheap enough for the hot path. A
:class:`Threshold` (for example ``p99_latency_ms > 10``) is evaluated at most once a
second over the last latencies and logs a warning when it is crossed, once per crossing.
"""

from __future__ import annotations

import bisect
import logging
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("twinengine.ai.serving")

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
METRICS = ("p50_latency_ms", "p99_latency_ms", "mean_latency_ms", "error_rate")


@dataclass
class Threshold:
    """Warn when ``metric`` (one of :data:`METRICS`) goes above ``limit``."""

    metric: str
    limit: float

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """Parse ``"p99_latency_ms>10"``."""
        name, _, value = text.partition(">")
        return cls(name.strip(), float(value))


class _Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, acc = [], 0
        for bound, count in zip(self.buckets, self.counts, strict=False):
            acc += count
            out.append(f'{name}_bucket{{{labels},le="{bound}"}} {acc}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.n}')
        out.append(f"{name}_sum{{{labels}}} {self.total}")
        out.append(f"{name}_count{{{labels}}} {self.n}")
        return out


class ServingMetrics:
    """Counters and histograms of one deployment (see module docstring)."""

    def __init__(self, deployment: str, threshold: Threshold | None = None) -> None:
        if threshold is not None and threshold.metric not in METRICS:
            from twinengine.core.errors import ConfigError

            raise ConfigError(
                f"unknown threshold metric {threshold.metric!r}", hint=f"use one of {METRICS}"
            )
        self.deployment = deployment
        self.threshold = threshold
        self.requests: dict[int, int] = {}
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batches = _Histogram(BATCH_BUCKETS)
        self.recent: deque[float] = deque(maxlen=2000)
        self.rows = 0
        self._sum: np.ndarray | None = None
        self._sumsq: np.ndarray | None = None
        self._checked = time.monotonic()
        self.alerting = False

    def request(self, status: int, seconds: float) -> None:
        self.requests[status] = self.requests.get(status, 0) + 1
        self.latency.observe(seconds)
        self.recent.append(seconds)
        if self.threshold is not None:
            now = time.monotonic()
            if now - self._checked >= 1.0:
                self._checked = now
                self.check()

    def batch(self, rows: int, inputs: list[np.ndarray]) -> None:
        self.batches.observe(rows)
        x = inputs[0].reshape(rows, -1).astype(np.float64, copy=False)
        s, sq = x.sum(axis=0), np.square(x).sum(axis=0)
        if self._sum is None or self._sum.shape != s.shape:
            self._sum, self._sumsq, self.rows = s, sq, rows
        else:
            self._sum += s
            self._sumsq += sq
            self.rows += rows

    def value(self, metric: str) -> float:
        lat = sorted(self.recent)
        if metric == "error_rate":
            total = sum(self.requests.values())
            bad = sum(n for code, n in self.requests.items() if code >= 400)
            return bad / total if total else 0.0
        if not lat:
            return 0.0
        if metric == "mean_latency_ms":
            return 1000.0 * sum(lat) / len(lat)
        q = 0.5 if metric == "p50_latency_ms" else 0.99
        return 1000.0 * lat[min(len(lat) - 1, int(q * len(lat)))]

    def check(self) -> bool:
        """Evaluate the threshold now; warn on a new crossing; return whether it is crossed."""
        if self.threshold is None:
            return False
        value = self.value(self.threshold.metric)
        crossed = value > self.threshold.limit
        if crossed and not self.alerting:
            log.warning(
                "deployment %s: %s = %.3f crossed the threshold %.3f",
                self.deployment,
                self.threshold.metric,
                value,
                self.threshold.limit,
            )
        self.alerting = crossed
        return crossed

    def render(self) -> str:
        dep = f'deployment="{self.deployment}"'
        lines = [
            "# HELP twin_serving_requests_total Prediction requests by HTTP status.",
            "# TYPE twin_serving_requests_total counter",
        ]
        for code, n in sorted(self.requests.items()):
            lines.append(f'twin_serving_requests_total{{{dep},status="{code}"}} {n}')
        lines += [
            "# HELP twin_serving_latency_seconds Prediction latency inside the server.",
            "# TYPE twin_serving_latency_seconds histogram",
            *self.latency.lines("twin_serving_latency_seconds", dep),
            "# HELP twin_serving_batch_rows Rows per model call (micro-batch size).",
            "# TYPE twin_serving_batch_rows histogram",
            *self.batches.lines("twin_serving_batch_rows", dep),
            "# HELP twin_serving_input_mean Running mean of each input feature.",
            "# TYPE twin_serving_input_mean gauge",
        ]
        stds = []
        if self._sum is not None and self.rows:
            mean = self._sum / self.rows
            std = np.sqrt(np.maximum(self._sumsq / self.rows - mean**2, 0.0))
            for i, (m, s) in enumerate(zip(mean, std, strict=True)):
                lines.append(f'twin_serving_input_mean{{{dep},feature="{i}"}} {m:.6g}')
                stds.append(f'twin_serving_input_std{{{dep},feature="{i}"}} {s:.6g}')
        lines += [
            "# HELP twin_serving_input_std Running standard deviation of each input feature.",
            "# TYPE twin_serving_input_std gauge",
            *stds,
        ]
        if self.threshold is not None:
            self.check()
            name = self.threshold.metric
            lines += [
                "# HELP twin_serving_threshold_crossed 1 while the alert threshold is crossed.",
                "# TYPE twin_serving_threshold_crossed gauge",
                f'twin_serving_threshold_crossed{{{dep},metric="{name}"}} {int(self.alerting)}',
            ]
        return "\n".join(lines) + "\n"

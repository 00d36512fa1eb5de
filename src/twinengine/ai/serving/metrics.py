"""Per-deployment serving metrics in the Prometheus text format, and threshold alerts.

:class:`ServingMetrics` counts requests by status, keeps a latency histogram and a
batch-size histogram, and running sums of every input feature (the columns of the
first input, flattened past the batch axis) so that ``/metrics`` reports each feature's
mean and standard deviation — the raw material for drift monitoring. Counting is a few
integer and NumPy operations per batch, cheap enough for the hot path. Thresholds
(:class:`Threshold`, e.g. ``p99_latency_ms>10``, ``throughput_rps<5`` or
``input_mean[0]>3``) are evaluated at most once a second; a crossing logs a warning and
calls ``on_alert`` once, and so does the return below the limit.
"""

from __future__ import annotations

import bisect
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinengine.core.errors import ConfigError

log = logging.getLogger("twinengine.ai.serving")

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
METRICS = (
    "p50_latency_ms",
    "p99_latency_ms",
    "mean_latency_ms",
    "error_rate",
    "throughput_rps",
    "input_mean[I]",
    "input_std[I]",
)
_THRESHOLD = re.compile(
    r"^\s*(?P<metric>[a-z0-9_]+(?:\[(?P<index>\d+)\])?)\s*(?P<op>[<>])\s*(?P<limit>\S+)\s*$"
)
THROUGHPUT_WINDOW_S = 10.0


@dataclass
class Threshold:
    """Alert when ``metric`` (one of :data:`METRICS`) goes above (``>``) or below
    (``<``) ``limit``."""

    metric: str
    limit: float
    op: str = ">"

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """Parse ``"p99_latency_ms>10"``, ``"throughput_rps<5"``, ``"input_mean[0]>3"``."""
        found = _THRESHOLD.match(text or "")
        if found is None:
            raise ConfigError(
                f"threshold {text!r}: write METRIC>LIMIT or METRIC<LIMIT",
                hint=f"metrics: {', '.join(METRICS)}",
            )
        try:
            limit = float(found["limit"])
        except ValueError:
            raise ConfigError(f"threshold {text!r}: {found['limit']!r} is not a number") from None
        base = found["metric"].split("[")[0]
        indexed = base in ("input_mean", "input_std")
        if base + ("[I]" if indexed else "") not in METRICS or indexed != bool(found["index"]):
            raise ConfigError(
                f"threshold {text!r}: unknown metric {found['metric']!r}",
                hint=f"use one of {', '.join(METRICS)} (I: a feature index)",
            )
        return cls(found["metric"], limit, found["op"])

    def crossed(self, value: float) -> bool:
        return value > self.limit if self.op == ">" else value < self.limit

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.limit:g}"


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

    def __init__(
        self,
        deployment: str,
        threshold: Threshold | str | Sequence[Threshold | str] | None = None,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if threshold is None:
            threshold = []
        elif isinstance(threshold, (Threshold, str)):
            threshold = [threshold]
        self.thresholds = [t if isinstance(t, Threshold) else Threshold.parse(t) for t in threshold]
        self.deployment = deployment
        self.on_alert = on_alert
        self.requests: dict[int, int] = {}
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batches = _Histogram(BATCH_BUCKETS)
        self.recent: deque[float] = deque(maxlen=2000)
        self.stamps: deque[float] = deque(maxlen=100_000)  # only a throughput threshold reads
        self._stamp = any(t.metric == "throughput_rps" for t in self.thresholds)
        self.rows = 0
        self.version: int | None = None
        self.swaps = 0
        self._sum: np.ndarray | None = None
        self._sumsq: np.ndarray | None = None
        self._checked = time.monotonic()
        self.started = self._checked
        self.alerting: set[str] = set()

    def request(self, status: int, seconds: float) -> None:
        self.requests[status] = self.requests.get(status, 0) + 1
        self.latency.observe(seconds)
        self.recent.append(seconds)
        if not self.thresholds:
            return
        now = time.monotonic()
        if self._stamp:
            self.stamps.append(now)
        if now - self._checked >= 1.0:  # also when mounted without the server's ticker
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

    def input_stats(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Running mean and standard deviation of each input feature (None before data)."""
        if self._sum is None or self._sumsq is None or not self.rows:
            return None
        mean = self._sum / self.rows
        return mean, np.sqrt(np.maximum(self._sumsq / self.rows - mean**2, 0.0))

    def value(self, metric: str) -> float:
        if metric == "error_rate":
            total = sum(self.requests.values())
            bad = sum(n for code, n in self.requests.items() if code >= 400)
            return bad / total if total else 0.0
        if metric == "throughput_rps":
            now = time.monotonic()
            span = min(THROUGHPUT_WINDOW_S, max(now - self.started, 1e-9))
            count = 0
            for stamp in reversed(self.stamps):
                if now - stamp > span:
                    break
                count += 1
            return count / span
        if metric.startswith("input_"):
            stats = self.input_stats()
            index = int(metric[metric.index("[") + 1 : -1])
            if stats is None or index >= stats[0].size:
                return float("nan")  # nothing seen yet: never crossed
            return float(stats[0 if metric.startswith("input_mean") else 1][index])
        lat = sorted(self.recent)
        if not lat:
            return 0.0
        if metric == "mean_latency_ms":
            return 1000.0 * sum(lat) / len(lat)
        q = 0.5 if metric == "p50_latency_ms" else 0.99
        return 1000.0 * lat[min(len(lat) - 1, int(q * len(lat)))]

    def check(self) -> bool:
        """Evaluate the thresholds now; alert on each new crossing and each recovery;
        return whether any is crossed."""
        self._checked = time.monotonic()
        for threshold in self.thresholds:
            value = self.value(threshold.metric)
            crossed = threshold.crossed(value)
            key = str(threshold)
            if crossed == (key in self.alerting):
                continue
            if crossed:
                self.alerting.add(key)
                log.warning(
                    "deployment %s: %s = %.3f crossed the threshold %s",
                    self.deployment,
                    threshold.metric,
                    value,
                    key,
                )
            else:
                self.alerting.discard(key)
                log.info("deployment %s: %s is back within %s", self.deployment, value, key)
            if self.on_alert is not None:
                self.on_alert(
                    {
                        "deployment": self.deployment,
                        "version": self.version,
                        "threshold": key,
                        "metric": threshold.metric,
                        "value": value,
                        "limit": threshold.limit,
                        "crossed": crossed,
                    }
                )
        return bool(self.alerting)

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
        stats = self.input_stats()
        if stats is not None:
            mean, std = stats
            for i, (m, s) in enumerate(zip(mean, std, strict=True)):
                lines.append(f'twin_serving_input_mean{{{dep},feature="{i}"}} {m:.6g}')
                stds.append(f'twin_serving_input_std{{{dep},feature="{i}"}} {s:.6g}')
        lines += [
            "# HELP twin_serving_input_std Running standard deviation of each input feature.",
            "# TYPE twin_serving_input_std gauge",
            *stds,
        ]
        if self.thresholds:
            self.check()
            lines += [
                "# HELP twin_serving_threshold_crossed 1 while the alert threshold is crossed.",
                "# TYPE twin_serving_threshold_crossed gauge",
            ]
            for t in self.thresholds:
                crossed = int(str(t) in self.alerting)
                lines.append(
                    f'twin_serving_threshold_crossed{{{dep},metric="{t.metric}",'
                    f'threshold="{t}"}} {crossed}'
                )
        lines += [
            "# HELP twin_serving_model_version Registry version being served (0: a file).",
            "# TYPE twin_serving_model_version gauge",
            f"twin_serving_model_version{{{dep}}} {self.version or 0}",
            "# HELP twin_serving_swaps_total Hot swaps to another model version.",
            "# TYPE twin_serving_swaps_total counter",
            f"twin_serving_swaps_total{{{dep}}} {self.swaps}",
        ]
        return "\n".join(lines) + "\n"

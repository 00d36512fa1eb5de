"""Conditions of living twins: fire a trigger when a metric crosses a threshold, or when
the incoming data drift away from a reference window.

::

    condition:
      threshold: {value: $data.level, above: 4.5}          # and/or below: …
    condition:
      drift:
        value: $data.level     # the number each event contributes
        test: ks               # ks (Kolmogorov-Smirnov, fires when p < p_value) or
        p_value: 0.01          # psi (population stability index, fires when > max_psi)
        reference: 200         # the first 200 values are the reference window …
        window: 100            # … compared with each new window of 100 values
        rebase: true           # after firing, the drifted window becomes the reference

The state (reference and current window) lives with the trigger in the database, so a
restart neither forgets the reference nor fires twice. :func:`ks_test` and :func:`psi`
are plain functions (no SciPy needed).
"""

from __future__ import annotations

import bisect
import math
from typing import Any

from twinengine.core import ConfigError


def _bad(name: str, field: str, problem: str) -> ConfigError:
    return ConfigError(f"trigger {name!r}: condition.{field}: {problem}")


def _num(name: str, field: str, value: Any, low: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(name, field, f"must be a number, got {value!r}")
    if low is not None and value < low:
        raise _bad(name, field, f"must be ≥ {low:g}")
    return float(value)


def parse_condition(name: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in ("threshold", "drift"):
        raise ConfigError(f"trigger {name!r}: condition: give one of threshold or drift")
    kind, body = next(iter(raw.items()))
    if not isinstance(body, dict) or not isinstance(body.get("value"), str):
        raise _bad(name, f"{kind}.value", "is required: a reference such as $data.level")
    if kind == "threshold":
        if "above" not in body and "below" not in body:
            raise _bad(name, "threshold", "give above and/or below")
        out = {"value": body["value"]}
        for side in ("above", "below"):
            if side in body:
                out[side] = _num(name, f"threshold.{side}", body[side])
        return {"threshold": out}
    test = body.get("test", "ks")
    if test not in ("ks", "psi"):
        raise _bad(name, "drift.test", "is ks or psi")
    return {
        "drift": {
            "value": body["value"],
            "test": test,
            "p_value": _num(name, "drift.p_value", body.get("p_value", 0.01), 0),
            "max_psi": _num(name, "drift.max_psi", body.get("max_psi", 0.2), 0),
            "reference": int(_num(name, "drift.reference", body.get("reference", 200), 10)),
            "window": int(_num(name, "drift.window", body.get("window", 100), 10)),
            "rebase": bool(body.get("rebase", True)),
        }
    }


def _ks_survival(lam: float) -> float:
    """P(K > lam) of the Kolmogorov distribution."""
    if lam < 0.2:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return max(0.0, min(1.0, 2 * total))


def ks_test(a: list[float], b: list[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov: ``(statistic D, asymptotic p-value)``."""
    xs, ys = sorted(a), sorted(b)
    n, m = len(xs), len(ys)
    d = 0.0
    for v in sorted(set(xs) | set(ys)):
        d = max(d, abs(bisect.bisect_right(xs, v) / n - bisect.bisect_right(ys, v) / m))
    en = math.sqrt(n * m / (n + m))
    return d, _ks_survival((en + 0.12 + 0.11 / en) * d)


def psi(reference: list[float], current: list[float], bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference`` (quantile bins)."""
    ref = sorted(reference)
    edges = [ref[int(len(ref) * i / bins)] for i in range(1, bins)]

    def shares(values: list[float]) -> list[float]:
        counts = [0] * bins
        for v in values:
            counts[bisect.bisect_right(edges, v)] += 1
        return [max(c / len(values), 1e-4) for c in counts]

    expected, actual = shares(reference), shares(current)
    return sum((a - e) * math.log(a / e) for a, e in zip(actual, expected, strict=True))


def evaluate(
    condition: dict[str, Any], values: list[float], state: dict[str, Any]
) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """Feed new ``values``; ``(fire, new state, detail)``."""
    if "threshold" in condition:
        rule = condition["threshold"]
        hits = [
            v
            for v in values
            if ("above" in rule and v > rule["above"]) or ("below" in rule and v < rule["below"])
        ]
        return bool(hits), state, {"value": hits[-1] if hits else None, **rule}
    rule = condition["drift"]
    reference = list(state.get("reference", []))
    window = list(state.get("window", []))
    for v in values:
        if len(reference) < rule["reference"]:
            reference.append(v)
        else:
            window.append(v)
    detail: dict[str, Any] = {"test": rule["test"], "window": len(window)}
    fire = False
    if len(window) >= rule["window"]:
        if rule["test"] == "ks":
            stat, p = ks_test(reference, window)
            detail.update(statistic=round(stat, 6), p_value=p, limit=rule["p_value"])
            fire = p < rule["p_value"]
        else:
            score = psi(reference, window)
            detail.update(psi=round(score, 6), limit=rule["max_psi"])
            fire = score > rule["max_psi"]
        if fire and rule["rebase"]:
            reference = window[-rule["reference"] :] if len(window) >= 10 else reference
        window = []
    return fire, {"reference": reference, "window": window}, detail


def numbers(values: list[Any]) -> list[float]:
    """The finite numeric values among ``values`` (others — text that is no number,
    ``"nan"``, ``"inf"``, an integer too large for a float — are skipped)."""
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float | str):
            continue
        try:
            number = float(v)
        except (ValueError, OverflowError):
            continue
        if math.isfinite(number):
            out.append(number)
    return out

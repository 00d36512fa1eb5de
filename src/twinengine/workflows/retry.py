"""Retries: the ``twin:Retry`` CWL extension hint.

Put it under ``hints`` (or ``requirements``) of a tool, a step or a whole workflow::

    $namespaces: {twin: "https://twinengine.org/cwl#"}
    hints:
      twin:Retry: {maxAttempts: 3, backoff: 2, backoffFactor: 2}

``maxAttempts`` counts all attempts (1 = no retry); the n-th retry waits
``backoff * backoffFactor**(n-1)`` seconds. Cancelled steps are never retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

RETRY_CLASS = "https://twinengine.org/cwl#Retry"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 1
    backoff: float = 1.0
    backoff_factor: float = 2.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt + 1``."""
        return self.backoff * (self.backoff_factor ** max(0, attempt - 1))


def _field(req: dict[str, Any], name: str) -> Any:
    for key, value in req.items():
        if key == name or key.endswith(("#" + name, "/" + name)):
            return value
    return None


def retry_policy(process: Any, default_attempts: int = 1) -> RetryPolicy:
    """The retry policy of a cwltool process (requirements win over hints)."""
    req, _ = process.get_requirement(RETRY_CLASS)
    if not req:
        return RetryPolicy(max_attempts=max(1, default_attempts))
    attempts = _field(req, "maxAttempts")
    backoff = _field(req, "backoff")
    factor = _field(req, "backoffFactor")
    return RetryPolicy(
        max_attempts=max(1, int(attempts)) if attempts is not None else max(1, default_attempts),
        backoff=float(backoff) if backoff is not None else 1.0,
        backoff_factor=float(factor) if factor is not None else 2.0,
    )

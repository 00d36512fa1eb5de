"""What a function is: its :class:`FunctionSpec`, its limits, and the errors about functions.

A function is a named Python callable (kind ``python``, target ``module:function``) or a
command line (kind ``command``) of one project, run by a pool of between
``min_workers`` and ``max_workers`` worker processes (at most :data:`MAX_WORKERS`), each
call within ``timeout`` seconds (at most :data:`MAX_TIMEOUT`), with ``env`` added to the
workers' environment and the network only when ``network`` says so.
:class:`FunctionSpec` is what a pool needs of a stored definition (``FunctionSpec.from_row``).
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
from dataclasses import dataclass, field
from typing import Any

from twinengine.core import InvalidInputError, TwinError
from twinengine.core.times import as_utc

KINDS = ("python", "command")
MAX_WORKERS = 64  # the most workers one function may ask for
MAX_TIMEOUT = 24 * 3600.0


class InvalidFunctionError(InvalidInputError):
    """A function definition is wrong: bad name, target, kind or pool settings."""


class FunctionFailedError(TwinError):
    """A function call failed (raised by :func:`run_function`, for callers that need a
    result or an exception, such as the trigger engine's pre-processing)."""

    def __init__(self, message: str, *, hint: str | None = None, call: dict | None = None):
        super().__init__(message, hint=hint)
        self.call = call or {}


@dataclass(frozen=True)
class FunctionSpec:
    """What a pool needs to run a function."""

    name: str
    project: str
    kind: str
    target: str
    min_workers: int = 0
    max_workers: int = 2
    timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    network: bool = False  # sandboxed workers may use the network

    @property
    def argv(self) -> list[str]:
        """The command line of a command function."""
        return shlex.split(self.target)

    def environment(self) -> dict[str, str]:
        """The workers' environment: this process's, then the function's ``env``."""
        return {**os.environ, **self.env}

    def fingerprint(self) -> tuple[Any, ...]:
        """Equal fingerprints: the same deployment (a redeploy changes ``created_at``)."""
        return (
            self.kind,
            self.target,
            self.min_workers,
            self.max_workers,
            self.timeout,
            tuple(sorted(self.env.items())),
            self.created_at,
            self.network,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FunctionSpec:
        config = row.get("config") or {}
        return cls(
            name=row["name"],
            project=row["project"],
            kind=row["kind"],
            target=row["target"],
            min_workers=int(config.get("min_workers", 0)),
            max_workers=int(config.get("max_workers", 2)),
            timeout=float(config.get("timeout", 60.0)),
            env=dict(config.get("env") or {}),
            created_at=as_utc(row.get("created_at")),
            network=bool(config.get("network", False)),
        )

"""Options of one TwinEngine run, and how they are taken out of a cwltool-style command line.

This module imports nothing heavy: ``twin run`` reads its options before deciding
whether the run needs cwltool at all (see :mod:`twinengine.workflows.native`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twinengine.core.errors import ConfigError, StateError

Listener = Callable[[str, str, str], None]  # (event, step path, state)


@dataclass
class RunOptions:
    """TwinEngine-specific options of one run."""

    executor: str | None = None
    cores: int | None = None
    ram_mb: int | None = None
    cache: bool = False
    retries: int = 1
    resume: str | None = None  # run id to continue
    run_id: str | None = None  # id to give a new run
    adopt: bool = False  # run_id names a queued record made by the API's dispatcher
    name: str | None = None
    dask_address: str | None = None
    argv: list[str] = field(default_factory=list)
    listeners: list[Listener] = field(default_factory=list)
    on_run: Callable[[str], None] | None = None  # told the run id as soon as it exists
    native: bool = True  # let TwinEngine's native loader run documents it fully understands
    loader: str | None = None  # which path ran the run: "native" or "cwltool" (set by run_cwl)
    inprocess: bool = False  # run on a thread of twin serve: cancelled by flag, not signal
    sandbox: str | None = None  # confine every command (runs of twin serve); None: plainly

    def record(self) -> dict[str, Any]:
        """What the run record keeps of these options: enough to resume the run."""
        return {
            "argv": self.argv,
            "cwd": os.getcwd(),
            "executor": self.executor,
            "cores": self.cores,
            "ram_mb": self.ram_mb,
            "cache": self.cache,
            "retries": self.retries,
            "dask_address": self.dask_address,
            "native": self.native,
            "loader": self.loader,
            "inprocess": self.inprocess,
            "sandbox": self.sandbox,
        }

    @classmethod
    def for_resume(cls, run: dict[str, Any]) -> tuple[list[str], str, RunOptions]:
        """``(argv, cwd, options)`` that continue the stored ``run`` (see :meth:`record`)."""
        stored = run["options"] or {}
        if not stored.get("argv"):
            raise StateError(f"run {run['id']} has no stored command line; it cannot be resumed")
        options = cls(
            executor=stored.get("executor"),
            cores=stored.get("cores"),
            ram_mb=stored.get("ram_mb"),
            cache=bool(stored.get("cache")),
            retries=stored.get("retries") or 1,
            dask_address=stored.get("dask_address"),
            native=stored.get("native", True),
            resume=run["id"],
            sandbox=stored.get("sandbox"),
        )
        return list(stored["argv"]), stored.get("cwd") or os.getcwd(), options


_VALUE_OPTIONS = {
    "--executor": "executor",
    "--cores": "cores",
    "--ram-mb": "ram_mb",
    "--retries": "retries",
    "--resume": "resume",
    "--run-id": "run_id",
    "--queued-run": "run_id",
    "--run-name": "name",
    "--dask-address": "dask_address",
    "--sandbox": "sandbox",
}
_INT_OPTIONS = {"cores", "ram_mb", "retries"}


def split_twin_options(argv: list[str]) -> tuple[RunOptions, list[str]]:
    """Take TwinEngine's own options out of a cwltool-style argument list."""
    opts = RunOptions()
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, _, value = arg.partition("=")
        if name in _VALUE_OPTIONS:
            if not value:
                if i + 1 >= len(argv):
                    raise ConfigError(f"option {name} needs a value")
                value = argv[i + 1]
                i += 1
            attr = _VALUE_OPTIONS[name]
            if attr in _INT_OPTIONS:
                try:
                    setattr(opts, attr, int(value))
                except ValueError:
                    raise ConfigError(
                        f"option {name} needs a whole number, got {value!r}"
                    ) from None
            else:
                setattr(opts, attr, value)
            opts.adopt = opts.adopt or name == "--queued-run"
        elif arg == "--cache":
            opts.cache = True
        elif arg == "--no-native":
            opts.native = False
        else:
            rest.append(arg)
        i += 1
    return opts, rest

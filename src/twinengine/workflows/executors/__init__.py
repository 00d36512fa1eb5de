"""Executors: where prepared commands run (local processes, Dask, …)."""

from twinengine.workflows.executors.base import (
    Executor,
    JobResult,
    JobSpec,
    available_executors,
    check_executor,
    make_executor,
)

__all__ = [
    "Executor",
    "JobResult",
    "JobSpec",
    "available_executors",
    "check_executor",
    "make_executor",
]

"""Executors: where prepared commands run (local processes, Dask, …)."""

from twinengine.workflows.executors.base import (
    Executor,
    JobResult,
    JobSpec,
    available_executors,
    check_executor,
    make_executor,
)
from twinengine.workflows.executors.startable import (
    CommandStartError,
    check_startable,
    start_problem,
)

__all__ = [
    "CommandStartError",
    "Executor",
    "JobResult",
    "JobSpec",
    "available_executors",
    "check_executor",
    "check_startable",
    "make_executor",
    "start_problem",
]

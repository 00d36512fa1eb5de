"""Workflows: run CWL v1.2 workflows with TwinEngine's scheduler and executors.

Public interface:

- :func:`load_document` — load and validate a CWL document (errors with file:line:col).
- :func:`run_cwl` / :class:`RunOptions` — run a document the way ``twin run`` does.
- :class:`RunStore` — query, cancel and resume stored runs.
- :class:`Scheduler`, :class:`Executor`, :class:`JobSpec`, :class:`JobResult`,
  :func:`make_executor`, :func:`available_executors` — the engine's building blocks.
"""

from twinengine.workflows.cwlrunner import RunOptions, TwinJobExecutor, run_cwl
from twinengine.workflows.executors import (
    Executor,
    JobResult,
    JobSpec,
    available_executors,
    make_executor,
)
from twinengine.workflows.loading import load_document
from twinengine.workflows.runs import RunStore
from twinengine.workflows.scheduler import Scheduler

__all__ = [
    "Executor",
    "JobResult",
    "JobSpec",
    "RunOptions",
    "RunStore",
    "Scheduler",
    "TwinJobExecutor",
    "available_executors",
    "load_document",
    "make_executor",
    "run_cwl",
]

"""Workflows: run CWL v1.2 workflows with TwinEngine's scheduler and executors.

Public interface:

- :func:`load_document` — load and validate a CWL document (errors with file:line:col).
- :func:`run_cwl` / :class:`RunOptions` — run a document the way ``twin run`` does.
- :class:`RunStore` — query, cancel and resume stored runs; :class:`RunRequest` — a run
  to queue on the server's dispatcher.
- :class:`Scheduler`, :class:`Executor`, :class:`JobSpec`, :class:`JobResult`,
  :func:`make_executor`, :func:`available_executors` — the engine's building blocks.

Names are imported on first use, so ``twin run`` on a document the native path runs
never imports cwltool.
"""

from __future__ import annotations

from twinengine.core.lazy import lazy_exports

_EXPORTS = {
    "Executor": "twinengine.workflows.executors",
    "JobResult": "twinengine.workflows.executors",
    "JobSpec": "twinengine.workflows.executors",
    "available_executors": "twinengine.workflows.executors",
    "make_executor": "twinengine.workflows.executors",
    "RunOptions": "twinengine.workflows.options",
    "RunRequest": "twinengine.workflows.runqueue",
    "RunStore": "twinengine.workflows.runs",
    "Scheduler": "twinengine.workflows.scheduler",
    "TwinJobExecutor": "twinengine.workflows.cwlexec",
    "load_document": "twinengine.workflows.loading",
    "run_cwl": "twinengine.workflows.cwlrunner",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

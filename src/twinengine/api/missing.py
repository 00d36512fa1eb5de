"""What the API answers for a resource that does not exist — and for one the caller may not see.

A tenant must not learn that another project's run, workflow, PROV document or project
exists: :meth:`~twinengine.api.context.ServerContext.owned` raises the resource's own
"missing" error when the caller has no role in the resource's project, so both answers
are the same bytes. The errors are made here, each with the message and hint of the
store that would raise it for an unknown id (the API tests compare the two bodies).
"""

from __future__ import annotations

from twinengine.core import NotFoundError


def no_project(name: str) -> NotFoundError:
    """A project that does not exist, or that the caller is not in."""
    return NotFoundError(f"no project {name!r}", hint="`GET /api/v1/me` lists yours")


def missing_run(run_id: str) -> NotFoundError:
    """A run id (or prefix) no run of the caller's projects has."""
    return NotFoundError(
        f"no run with id {run_id!r}", hint="`twin runs list` shows the stored runs"
    )


def missing_workflow(workflow_id: str) -> NotFoundError:
    """A workflow id no workflow of the caller's projects has."""
    return NotFoundError(f"no workflow {workflow_id!r}", hint="list them with GET /workflows")


def missing_document(doc_id: str) -> NotFoundError:
    """A PROV document id no document of the caller's projects has."""
    return NotFoundError(f"no PROV document {doc_id!r}")

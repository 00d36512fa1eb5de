"""Which steps of a sandboxed run can be confined, and where their outputs may lead.

A run of ``twin serve`` gives every command to its sandbox. Steps that cwltool would run
with its own job runner — a DockerRequirement container, an MPI launcher, a software
dependency resolver's script — cannot be confined the same way, so :func:`unconfinable`
refuses them with a message naming the requirement (a DockerRequirement *hint* is
ignored with a warning: the step runs without a container, in the sandbox).
:func:`output_roots` is what a sandboxed command's outputs may lead to: its working
folder and its inputs, as real paths. :func:`ram_max` is the ``ramMax`` a cwltool job
declares — its sandbox's memory limit.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from twinengine.workflows.executors.base import JobSpec

log = logging.getLogger("twinengine.workflows")

MPI = "http://commonwl.org/cwltool#MPIRequirement"


def unconfinable(process: Any, path: str, job: Any = None) -> str | None:
    """Why the step at ``path`` cannot run in the run's sandbox; None when it can.
    ``job``: the cwltool job object, when cwltool would run it with its own runner."""
    docker, required = process.get_requirement("DockerRequirement")
    if docker and required:
        return (
            "DockerRequirement: this server runs every step in its sandbox and does not "
            "start containers; make the requirement a hint to run the step without one"
        )
    mpi, _ = process.get_requirement(MPI)
    if mpi:
        return "MPIRequirement: an MPI launcher cannot run in this server's sandbox"
    if job is not None:
        if getattr(getattr(job, "builder", None), "job_script_provider", None) is not None:
            return (
                "SoftwareRequirement: a dependency resolver's job script cannot run in "
                "this server's sandbox"
            )
        return (
            f"this step needs cwltool's own job runner ({type(job).__name__}), which this "
            "server's sandbox cannot confine"
        )
    if docker:
        log.warning(
            "[%s] DockerRequirement hint ignored: the step runs without a container, in the "
            "sandbox",
            path,
        )
    return None


def output_roots(spec: JobSpec) -> tuple[str, ...] | None:
    """The real paths a sandboxed command's outputs may lead to; None: not sandboxed."""
    if spec.sandbox is None:
        return None
    folders = [os.path.realpath(spec.cwd)]
    folders += [os.path.realpath(mount.source) for mount in spec.readonly]
    return tuple(folders)


def ram_max(job: Any) -> int:
    """MiB of ``ResourceRequirement.ramMax`` of a cwltool job (a requirement before a
    hint, expressions evaluated); 0 when it gives none."""
    builder = job.builder  # the last entry wins, as in cwltool's get_requirement
    for found in (*reversed(builder.requirements), *reversed(builder.hints)):
        if found.get("class") == "ResourceRequirement" and found.get("ramMax") is not None:
            value = builder.do_eval(found["ramMax"])
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
                return math.ceil(value)
            return 0
    return 0

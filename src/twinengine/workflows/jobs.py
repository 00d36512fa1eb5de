"""From a cwltool job object to a command and back.

cwltool builds each CommandLineTool invocation (``CommandLineTool.job``: input binding,
command line, environment, InitialWorkDir, stdio names) and collects its outputs
(``collect_outputs``). What lies between — staging, spawning, waiting — is TwinEngine's:
:func:`prepare_command` stages the job's files and returns a plain
:class:`~twinengine.workflows.executors.JobSpec`; after the executor ran it,
:func:`finish_command` relinks InitialWorkDir entries, collects the CWL outputs and
decides the process status from ``successCodes``/``temporaryFailCodes``/
``permanentFailCodes`` exactly as cwltool does.
"""

from __future__ import annotations

import errno
import logging
import os
from typing import Any

from cwltool.errors import WorkflowException
from cwltool.job import CommandLineJob, relink_initialworkdir
from cwltool.process import stage_files
from cwltool.utils import bytes2str_in_dicts

from twinengine.workflows.executors.base import JobResult, JobSpec
from twinengine.workflows.outcome import command_outcome

log = logging.getLogger("twinengine.workflows")


def is_plain_command_job(job: Any) -> bool:
    """True for jobs TwinEngine runs itself (no container, no dependency-resolver script)."""
    if type(job) is not CommandLineJob:
        return False
    if getattr(job, "mpi_procs", None):
        return False
    builder = getattr(job, "builder", None)
    return builder is None or builder.job_script_provider is None


def is_inline_job(job: Any) -> bool:
    """True for jobs cwltool evaluates in-process (ExpressionTool …), not as a command."""
    from cwltool.command_line_tool import ExpressionJob

    return isinstance(job, ExpressionJob) or not hasattr(job, "command_line")


def requested_resources(job: Any) -> tuple[int, int]:
    """``(cores, ram_mb)`` a cwltool job asks for (ResourceRequirement, cwltool defaults)."""
    resources = job.builder.resources
    cores = max(1, int(-(-float(resources.get("cores", 1)) // 1)))
    return cores, int(resources.get("ram", 0) or 0)


def prepare_command(
    job: CommandLineJob,
    runtime_context: Any,
    key: str,
    log_stdout: str | None,
    log_stderr: str | None,
    cores: int = 1,
    ram_mb: int = 0,
) -> JobSpec:
    """Stage ``job``'s inputs and InitialWorkDir and return the command to run.

    ``log_stdout``/``log_stderr`` receive the streams the tool does not capture itself;
    ``cores``/``ram_mb`` are what the scheduler reserved for it.
    """
    os.makedirs(job.tmpdir, exist_ok=True)
    job._setup(runtime_context)
    stage_files(
        job.pathmapper,
        ignore_writable=True,
        symlink=True,
        secret_store=runtime_context.secret_store,
    )
    if job.generatemapper is not None:
        stage_files(
            job.generatemapper,
            ignore_writable=job.inplace_update,
            symlink=True,
            secret_store=runtime_context.secret_store,
        )
        relink_initialworkdir(
            job.generatemapper, job.outdir, job.builder.outdir, inplace_update=job.inplace_update
        )

    stdin_path = None
    if job.stdin is not None:
        rmap = job.pathmapper.reversemap(job.stdin)
        if rmap is None:
            raise WorkflowException(f"{job.stdin} missing from pathmapper")
        stdin_path = rmap[1]

    def captured(name: str | None) -> str | None:
        if name is None:
            return None
        path = os.path.join(job.base_path_logs, name)
        parent = os.path.dirname(path)
        if parent and not os.path.exists(parent):
            os.makedirs(parent)
        return path

    stdout_path = captured(job.stdout)
    stderr_path = captured(job.stderr)
    argv = [str(x) for x in job.command_line]
    if not argv:
        raise WorkflowException(
            "Cannot run a CommandLineTool that produces an empty command line. Specify a "
            "'baseCommand', 'arguments', and/or an input with an 'inputBinding' so there is "
            "a program to execute."
        )
    env = dict(job.environment)
    if runtime_context.secret_store is not None:
        argv = runtime_context.secret_store.retrieve(argv)
        env = runtime_context.secret_store.retrieve(env)
    return JobSpec(
        key=key,
        argv=argv,
        cwd=job.outdir,
        env=env,
        stdin_path=stdin_path,
        stdout_path=stdout_path or log_stdout,
        stderr_path=stderr_path or log_stderr,
        stdout_is_log=stdout_path is None,
        stderr_is_log=stderr_path is None,
        timelimit=job.timelimit or None,
        cores=cores,
        ram_mb=ram_mb,
        name=job.name,
    )


def finish_command(
    job: CommandLineJob, result: JobResult
) -> tuple[dict[str, Any], str, str | None]:
    """Collect the outputs of a finished command: ``(outputs, status, message)``.

    Work and temporary folders are not removed here: they belong to the run, which
    removes them all at once when it succeeds (and keeps them for resume otherwise).
    """
    outputs: dict[str, Any] = {}
    status, message, ran = command_outcome(
        result,
        job.timelimit,
        job.successCodes,
        job.temporaryFailCodes,
        job.permanentFailCodes,
    )
    if not ran:
        return outputs, status, message
    try:
        if "listing" in job.generatefiles and job.generatemapper is not None:
            relink_initialworkdir(
                job.generatemapper,
                job.outdir,
                job.builder.outdir,
                inplace_update=job.inplace_update,
            )
        outputs = bytes2str_in_dicts(job.collect_outputs(job.outdir, result.exit_code))
    except OSError as exc:
        status = "permanentFail"
        message = (
            "no space left on device while collecting outputs"
            if exc.errno == errno.ENOSPC
            else f"cannot collect outputs: {exc}"
        )
    except Exception as exc:  # WorkflowException, a bug in an output expression …
        status, message = "permanentFail", f"cannot collect outputs: {exc}"
    return outputs, status, message

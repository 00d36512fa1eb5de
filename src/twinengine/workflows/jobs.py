"""From a cwltool job object to a command and back.

cwltool builds each CommandLineTool invocation (``CommandLineTool.job``: input binding,
command line, environment, InitialWorkDir, stdio names) and collects its outputs
(``collect_outputs``). What lies between — staging, spawning, waiting — is TwinEngine's:
:func:`prepare_command` stages the job's files and returns a plain
:class:`~twinengine.workflows.executors.JobSpec`; after the executor ran it,
:func:`finish_command` relinks InitialWorkDir entries, collects the CWL outputs and
decides the process status from ``successCodes``/``temporaryFailCodes``/
``permanentFailCodes`` exactly as cwltool does.

A job of a sandboxed run (``twin serve``) also says what its sandbox shows: its output
and temporary folders writable, each staged input read-only where the command line
names it (and at its real path when InitialWorkDir links to it), the network when
``NetworkAccess`` allows. What the run process reads or copies for it stays inside that:
staged copies and stdin must be readable by the sandbox user and lead nowhere else, and
outputs are collected through :class:`ConfinedFsAccess` — a glob is expanded only inside
the working folder (one that is absolute, has a ``..`` or passes through a link to a
folder elsewhere is refused before anything is listed), and a glob match, a
``cwl.output.json`` path, a secondary file or a ``loadContents`` that leads outside the
working folder and the inputs fails the step
(:class:`~twinengine.workflows.sandbox.EscapeError`); what it reads is bounded by an
:class:`~twinengine.workflows.sandbox.OutputBudget`.
"""

from __future__ import annotations

import errno
import functools
import io
import logging
import os
from typing import IO, Any

from cwltool.errors import WorkflowException
from cwltool.job import CommandLineJob, relink_initialworkdir
from cwltool.process import stage_files
from cwltool.stdfsaccess import StdFsAccess
from cwltool.utils import bytes2str_in_dicts
from schema_salad.ref_resolver import file_uri, uri_file_path

from twinengine.core import get_settings
from twinengine.core.errors import TwinError
from twinengine.workflows.confinement import ram_max
from twinengine.workflows.executors.base import JobResult, JobSpec
from twinengine.workflows.executors.startable import check_startable
from twinengine.workflows.outcome import command_outcome
from twinengine.workflows.sandbox import (
    CUSTOM_OUTPUT_LIMIT,
    EscapeError,
    Mount,
    OutputBudget,
    check_inside,
    check_output,
    check_tree,
    confined_glob,
    inside,
    open_sandbox,
)

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
    sandbox: str | None = None,
) -> JobSpec:
    """Stage ``job``'s inputs and InitialWorkDir and return the command to run.

    ``log_stdout``/``log_stderr`` receive the streams the tool does not capture itself;
    ``cores``/``ram_mb`` are what the scheduler reserved for it; ``sandbox``: the run's
    sandbox (see the module doc).
    """
    check_startable((), None, {"stdout": job.stdout, "stderr": job.stderr})
    os.makedirs(job.tmpdir, exist_ok=True)
    job._setup(runtime_context)
    if sandbox is not None:
        _check_copies(job, sandbox)
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
        if sandbox is not None:  # the server makes and opens it: never through a link
            check_inside(parent, (os.path.realpath(job.outdir),), "stream folder")
        if parent and not os.path.exists(parent):
            os.makedirs(parent)
        return path

    stdout_path = captured(job.stdout)
    stderr_path = captured(job.stderr)
    for path in (stdout_path, stderr_path):
        if sandbox is None or path is None:
            continue
        if os.path.islink(path):  # an InitialWorkDir entry: the server would write into it
            raise EscapeError(
                f"{os.path.basename(path)!r} is a link, not a new file for the stream",
                hint="capture stdout/stderr to a name no InitialWorkDir entry uses",
            )
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
    spec = JobSpec(
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
    if sandbox is not None:
        spec.sandbox = sandbox
        spec.writable = (job.outdir, job.tmpdir)
        spec.readonly = input_mounts(job)
        spec.network = network_access(job)
        spec.ram_max_mb = ram_max(job)
        if stdin_path is not None and not open_sandbox(sandbox).may_read(stdin_path):
            raise EscapeError(
                f"stdin {os.path.basename(stdin_path)!r} is not readable by the sandbox user",
                hint="give the step an input it may read",
            )
    return spec


def input_mounts(job: CommandLineJob) -> tuple[Mount, ...]:
    """The staged inputs a sandbox shows read-only: each where the command line names it,
    and at its real path when a link in the output folder leads there."""
    mounts: list[Mount] = []
    for mapper in (job.pathmapper, job.generatemapper):
        if mapper is None:
            continue
        for _, entry in mapper.items_exclude_children():
            if not entry.staged or entry.resolved.startswith("_:"):
                continue
            in_outdir = inside(entry.target, job.outdir)
            if entry.type in ("File", "Directory"):
                mounts.append(Mount(entry.resolved, entry.resolved if in_outdir else entry.target))
            elif entry.type in ("CreateFile", "CreateWritableFile") and not in_outdir:
                mounts.append(Mount(entry.target, entry.target))
    return tuple(mounts)


def network_access(job: CommandLineJob) -> bool:
    """Whether the tool asks for the network (``NetworkAccess``, maybe an expression)."""
    requirement, _ = job.get_requirement("NetworkAccess")
    if not requirement:
        return False
    value = requirement.get("networkAccess", False)
    if isinstance(value, str):
        value = job.builder.do_eval(value)
    return value is True


def _check_copies(job: CommandLineJob, sandbox: str) -> None:
    """Refuse to copy (as the server) what the sandbox user could not read, or a folder
    holding links that lead outside the job's inputs."""
    box = open_sandbox(sandbox)
    mappers = [m for m in (job.pathmapper, job.generatemapper) if m is not None]
    entries = [entry for mapper in mappers for _, entry in mapper.items_exclude_children()]
    kinds = ("File", "Directory", "WritableFile", "WritableDirectory")
    inputs = [
        os.path.realpath(e.resolved)
        for e in entries
        if e.type in kinds and not e.resolved.startswith("_:")
    ]
    for entry in entries:
        if entry.type not in ("WritableFile", "WritableDirectory") or not entry.staged:
            continue
        if entry.resolved.startswith("_:"):
            continue
        name = os.path.basename(entry.target)
        check_tree(entry.resolved, inputs, f"input {name!r}")
        if not box.may_read(entry.resolved):
            raise EscapeError(
                f"input {name!r} is not readable by the sandbox user, so it is not copied",
                hint="give the step an input it may read",
            )


class ConfinedFsAccess(StdFsAccess):
    """cwltool's file access for collecting a sandboxed step's outputs: every path it
    opens, tests or lists must lead inside ``roots`` and have no ``..``
    (:class:`EscapeError` otherwise); globs are expanded only inside (a refused glob, a
    match that leads outside, or one beyond the budget is remembered in ``refused`` and
    matches nothing: cwltool would log it as an unexpected error); files are read and
    listed within ``budget``."""

    def __init__(
        self,
        basedir: str,
        roots: tuple[str, ...],
        refused: list[TwinError],
        budget: OutputBudget,
    ) -> None:
        super().__init__(basedir)
        self.roots = roots
        self.refused = refused
        self.budget = budget

    def _abs(self, p: str) -> str:
        path = super()._abs(p)
        check_output(path, self.basedir, self.roots)
        return path

    def _shown(self, path: str) -> str:
        base = self.basedir.rstrip("/") + "/"
        return path[len(base) :] if path.startswith(base) else os.path.basename(path)

    def glob(self, pattern: str) -> list[str]:
        path = super()._abs(pattern)
        if path == self.basedir:  # cwltool's own look at the output folder
            return [file_uri(path)]
        written = path[len(self.basedir.rstrip("/")) + 1 :]
        if not path.startswith(self.basedir.rstrip("/") + "/"):
            written = pattern
        kept = []
        try:
            matches = confined_glob(self.basedir, written, self.roots)
            self.budget.count(len(matches), written)
            for match in matches:
                self._abs(match)
                kept.append(file_uri(match))
        except TwinError as exc:
            self.refused.append(exc)
            return []
        return kept

    def open(self, fn: str, mode: str) -> IO[Any]:
        path = self._abs(fn)
        if "r" not in mode or any(flag in mode for flag in "wax+"):
            return super().open(fn, mode)
        custom = path == os.path.join(self.basedir, "cwl.output.json")
        limit = CUSTOM_OUTPUT_LIMIT if custom else 0
        handle = self.budget.open(path, self._shown(path), limit)
        return handle if "b" in mode else io.TextIOWrapper(handle, encoding="utf-8")

    def listdir(self, fn: str) -> list[str]:
        entries = super().listdir(fn)
        self.budget.count(len(entries), self._shown(self._abs(fn)))
        return entries


def finish_command(
    job: CommandLineJob, result: JobResult, roots: tuple[str, ...] | None = None
) -> tuple[dict[str, Any], str, str | None]:
    """Collect the outputs of a finished command: ``(outputs, status, message)``.

    ``roots``: the real paths a sandboxed step's outputs may lead to (its output folder
    and its inputs); None: anywhere (an unconfined run).
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
    refused: list[TwinError] = []
    if roots is not None:
        budget = OutputBudget.from_settings(get_settings())
        job.builder.make_fs_access = functools.partial(
            ConfinedFsAccess, roots=roots, refused=refused, budget=budget
        )
    try:
        if "listing" in job.generatefiles and job.generatemapper is not None:
            if roots is not None:
                _check_relink(job)
            relink_initialworkdir(
                job.generatemapper,
                job.outdir,
                job.builder.outdir,
                inplace_update=job.inplace_update,
            )
        collected = bytes2str_in_dicts(job.collect_outputs(job.outdir, result.exit_code))
        if roots is not None:
            _check_output_trees(collected, roots)
        if refused:
            raise refused[0]
        outputs = collected
    except OSError as exc:
        status = "permanentFail"
        message = (
            "no space left on device while collecting outputs"
            if exc.errno == errno.ENOSPC
            else f"cannot collect outputs: {exc}"
        )
    except Exception as exc:  # WorkflowException, a bug in an output expression …
        why = refused[0] if refused else exc  # a refused match first: it made the rest fail
        status, message = "permanentFail", f"cannot collect outputs: {why}"
    return outputs, status, message


def _check_relink(job: CommandLineJob) -> None:
    """Before the server re-links InitialWorkDir entries in a finished sandboxed step's
    folder (removing what the tool left there): no folder on the way may be a link the
    tool made, or the removal would happen wherever it leads."""
    assert job.generatemapper is not None
    outdir = os.path.realpath(job.outdir)
    for _, entry in job.generatemapper.items_exclude_children():
        if not entry.staged or not entry.target.startswith(job.builder.outdir + "/"):
            continue
        target = os.path.join(job.outdir, entry.target[len(job.builder.outdir) + 1 :])
        check_inside(os.path.dirname(target), (outdir,), "InitialWorkDir entry")


def _check_output_trees(value: Any, roots: tuple[str, ...]) -> None:
    """Every File and Directory of an output object, and every link in a Directory, leads
    inside ``roots``."""
    if isinstance(value, list):
        for item in value:
            _check_output_trees(item, roots)
    elif isinstance(value, dict):
        if value.get("class") in ("File", "Directory"):
            path = value.get("path") or value.get("location")
            if isinstance(path, str) and (path.startswith("file://") or path.startswith("/")):
                check_tree(uri_file_path(path) if path.startswith("file://") else path, roots)
        for key in ("secondaryFiles", "listing"):
            _check_output_trees(value.get(key), roots)
        if "class" not in value:
            for item in value.values():
                _check_output_trees(item, roots)

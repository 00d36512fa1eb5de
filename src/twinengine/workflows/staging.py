"""What a server run of a registered document may stage and read, whatever its expressions.

Registration checks every File and Directory a document writes down, and the API checks
every one an input object names; but a CWL expression can build a File object at run
time — a ``secondaryFiles`` pattern, an InitialWorkDirRequirement entry, a step's
``valueFrom`` returning ``{class: File, location: …}`` — and cwltool, in the run process
that runs as the server, would stage (link into the step) or read (``loadContents``)
whatever it names. For a run the server started, :func:`confined_runtime` gives cwltool
a path mapper (:class:`ConfinedPathMapper`) and a file access
(:class:`ConfinedFsAccess`) that allow only the run's own folder, its workflow's upload,
the files its input object names and ``input_roots`` (never elsewhere in the server's
home or its other own files), and never stage a file outside the step's staging folder
(a ``basename`` or ``dirname`` climbing out of it). The server wrote the input object
with real paths; a file it names that now lies behind a link (a folder swapped for one
after the run was queued) is no longer the run's own: only ``input_roots`` may allow it.
A File or Directory object an expression built without a usable ``location``,
``basename`` or ``listing`` fails the step with a message, not the run with a traceback.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

from cwltool.context import RuntimeContext
from cwltool.errors import WorkflowException
from cwltool.pathmapper import PathMapper
from cwltool.stdfsaccess import StdFsAccess, abspath

from twinengine.core import Settings
from twinengine.workflows.fetching import url_path
from twinengine.workflows.fileroots import FILE_CLASSES, Roots, file_objects, server_private

_REFUSED = (
    "not found or not allowed: a step of a workflow the server runs may read only its "
    "inputs, its workflow's files, what earlier steps wrote and the server's input roots"
)


def _local(location: str, basedir: str) -> str | None:
    """The local path of ``location`` (None: a URL, which a confined run never fetches)."""
    if urllib.parse.urlsplit(location).scheme in ("http", "https"):
        return None
    return abspath(location, basedir)


def _well_formed(obj: Any) -> str | None:
    """What is wrong with a File or Directory object about to be staged (None: nothing)."""
    if not isinstance(obj, dict) or obj.get("class") not in FILE_CLASSES:
        return "is not a File or Directory object"
    for key in ("location", "basename"):
        value = obj.get(key)
        if not isinstance(value, str) or not value:
            return f"a {obj['class']} has no {key}"
    for key in ("listing", "secondaryFiles"):
        value = obj.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return f"a {obj['class']}'s {key} is not a list of File and Directory objects"
    return None


def _refuse_malformed(obj: Any) -> None:
    wrong = _well_formed(obj)
    if wrong is not None:
        raise WorkflowException(
            f"{wrong}: give location and basename (an expression building a File must "
            "return {class: File, location: …, basename: …})"
        )


def _check(roots: Roots, location: str, basedir: str, name: str) -> None:
    path = _local(location, basedir)
    if path is None or roots.allows(Path(path)) is None:
        raise WorkflowException(f"{name}: {_REFUSED}")


class ConfinedPathMapper(PathMapper):
    """cwltool's path mapper, refusing files outside :attr:`roots` (set by
    :func:`path_mapper_for`) and targets outside the staging folder."""

    roots: Roots = Roots()

    def __init__(
        self, referenced_files: Any, basedir: str, stagedir: str, separateDirs: bool = True
    ) -> None:
        for obj in referenced_files:  # cwltool reads location before visit() would check
            _refuse_malformed(obj)
        super().__init__(referenced_files, basedir, stagedir, separateDirs)

    def visit(
        self,
        obj: Any,
        stagedir: str,
        basedir: str,
        copy: bool = False,
        staged: bool = False,
    ) -> None:
        _refuse_malformed(obj)
        location = str(obj.get("location", ""))
        if location not in self._pathmap:
            name = str(obj.get("basename") or "a file")
            if not location.startswith("_:"):
                _check(self.roots, location, basedir, name)
            folder = os.path.normpath(self.stagedir)
            target = os.path.normpath(
                os.path.join(str(obj.get("dirname") or stagedir), str(obj.get("basename", "")))
            )
            if self.stagedir and target != folder and not target.startswith(folder + os.sep):
                raise WorkflowException(f"{name}: would be placed outside the step's folder")
        super().visit(obj, stagedir, basedir, copy, staged)


def path_mapper_for(roots: Roots) -> type[ConfinedPathMapper]:
    """A :class:`ConfinedPathMapper` class bound to ``roots`` (cwltool makes instances)."""
    return type("BoundPathMapper", (ConfinedPathMapper,), {"roots": roots})


class ConfinedFsAccess(StdFsAccess):
    """cwltool's file access, for a confined run: reading, listing or globbing outside the
    roots is refused; a test for a file there answers "no such file"."""

    roots: Roots = Roots()

    def _abs(self, p: str) -> str:
        path = super()._abs(p)
        if urllib.parse.urlsplit(path).scheme in ("http", "https"):
            raise WorkflowException(f"{p}: {_REFUSED}")
        if self.roots.allows(Path(path)) is None:
            raise WorkflowException(f"{os.path.basename(path) or p}: {_REFUSED}")
        return path

    def glob(self, pattern: str) -> list[str]:
        found = []
        for match in super().glob(pattern):
            try:
                self._abs(match)
            except WorkflowException:
                continue
            found.append(match)
        return found

    def exists(self, fn: str) -> bool:
        try:
            return super().exists(fn)
        except WorkflowException:
            return False

    def isfile(self, fn: str) -> bool:
        try:
            return super().isfile(fn)
        except WorkflowException:
            return False

    def isdir(self, fn: str) -> bool:
        try:
            return super().isdir(fn)
        except WorkflowException:
            return False


def fs_access_for(roots: Roots) -> type[ConfinedFsAccess]:
    return type("BoundFsAccess", (ConfinedFsAccess,), {"roots": roots})


def server_run_folder(outdir: str | None, job: str | None, settings: Settings) -> Path | None:
    """The run folder (``$TWIN_HOME/runs/<id>``) of a run the server started: its output
    folder and its input object both lie in it. None for any other run."""
    if not outdir or not job:
        return None
    runs = settings.runs_dir.resolve()
    try:
        folder = Path(outdir).resolve().relative_to(runs).parts[:1]
        if not folder or Path(job).resolve().parent != runs / folder[0]:
            return None
    except (ValueError, OSError, RuntimeError):
        return None
    return runs / folder[0]


def confined_runtime(
    args: Any, workflow_root: Path, run_folder: Path, settings: Settings
) -> RuntimeContext:
    """cwltool's runtime context for the server's run of a registered document (``args``:
    cwltool's parsed command line; see the module)."""
    job = Path(args.job_order[0])
    named: list[Path] = []  # as the server wrote them: real paths (then, and still now)
    try:
        order = json.loads(job.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        order = {}
    for _, obj in file_objects(order):
        for key in ("location", "path"):
            value = obj.get(key)
            if isinstance(value, str) and value and not value.startswith("_:"):
                local = _local(value, str(job.parent))
                if local is not None:
                    path = url_path(local)
                    if os.path.realpath(path) == os.path.normpath(path):
                        named.append(Path(path))  # else only what input_roots allow
    roots = Roots.of(
        own=(workflow_root, run_folder, *named),
        shared=settings.input_roots,
        hidden=server_private(settings),
    )
    context = RuntimeContext(vars(args))
    context.path_mapper = path_mapper_for(roots)
    context.make_fs_access = fs_access_for(roots)
    return context

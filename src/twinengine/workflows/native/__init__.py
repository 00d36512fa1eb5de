"""The native path: run plain CWL documents without loading cwltool.

cwltool is a complete, careful implementation of CWL — and it costs about a second
before the first job starts (importing it, loading the CWL schema, validating every
step's tool again) plus milliseconds of bookkeeping per job. For the documents most
workflows are made of — command-line tools with literal bindings, steps wired
together, dotproduct scatters — TwinEngine has its own loader
(:mod:`~twinengine.workflows.native.document`) and job builder
(:mod:`~twinengine.workflows.native.tool`, :mod:`~twinengine.workflows.native.job`,
:mod:`~twinengine.workflows.native.workflow`) that do exactly what cwltool does for
that subset, on the same scheduler, executors and run records.

:func:`try_native` is asked first by :func:`~twinengine.workflows.cwlrunner.run_cwl`.
It answers None — and the run goes through cwltool, unchanged — whenever the command
line, the document or the input object holds anything outside the subset (an
expression, a sub-workflow, a Directory, an option it does not know …), and whenever
the input object is not valid, so that cwltool reports the problem in its own words.
``--no-native`` (or ``RunOptions(native=False)``) always takes the cwltool path.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from twinengine.core import State
from twinengine.core.errors import InvalidInputError
from twinengine.workflows.native.document import NotNative, file_path, matches, read_yaml
from twinengine.workflows.native.job import (
    SHA256_KEY,
    RunContext,
    digests,
    file_object,
    file_uri,
    sha1_of,
)
from twinengine.workflows.native.tool import NativeTool, load_plain
from twinengine.workflows.native.workflow import NativeWorkflow
from twinengine.workflows.options import RunOptions
from twinengine.workflows.scratch import SparePool

__all__ = ["NotNative", "load_native", "try_native"]

log = logging.getLogger("twinengine.workflows")

_IGNORED_FLAGS = {
    "--quiet",
    "--no-container",
    "--parallel",
    "--relax-path-checks",
    "--disable-color",
    "--enable-color",
    "--strict",
}


def parse_argv(argv: list[str]) -> tuple[str, str | None, str, bool]:
    """``(document, job file, outdir, quiet)`` from a cwltool-style command line."""
    positional: list[str] = []
    outdir = os.path.abspath(".")
    quiet = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--outdir" and i + 1 < len(argv):
            outdir = argv[i + 1]
            i += 1
        elif arg.startswith("--outdir="):
            outdir = arg.partition("=")[2]
        elif arg in _IGNORED_FLAGS:
            quiet = quiet or arg == "--quiet"
        elif arg.startswith("-"):
            raise NotNative(f"option {arg}")
        else:
            positional.append(arg)
        i += 1
    if not 1 <= len(positional) <= 2:
        raise NotNative("not one document and at most one input object")
    document = positional[0]
    if "#" in document or "://" in document:
        raise NotNative(f"document {document!r}")
    return document, (positional[1] if len(positional) == 2 else None), outdir, quiet


def load_native(path: str | Path) -> NativeTool | NativeWorkflow:
    """Load a CWL document the native path can run (NotNative otherwise)."""
    path = Path(path).resolve()
    doc = load_plain(path)
    if doc.get("cwlVersion") != "v1.2":
        raise NotNative(f"cwlVersion {doc.get('cwlVersion')!r}")
    body = {k: v for k, v in doc.items() if k != "cwlVersion"}
    if doc.get("class") == "Workflow":
        return NativeWorkflow(body, path, {})
    if doc.get("class") == "CommandLineTool":
        return NativeTool(body, path.as_uri())
    raise NotNative(f"class {doc.get('class')!r}")


def _input_file(value: dict[str, Any], base: Path, confined: bool) -> dict[str, Any]:
    if set(value) - {"class", "location", "path", "basename"}:
        raise NotNative("a File input with fields other than location/path")
    location = value.get("location") or value.get("path")
    if not isinstance(location, str):
        raise NotNative("a File input without a location")
    path = os.path.abspath(file_path(location, base))
    if not os.path.isfile(path):
        raise NotNative(f"input file {location} does not exist")
    if confined and os.path.realpath(path) != path:
        # the server wrote real paths: a link on the way now is judged by cwltool's confined
        # staging (workflows/staging.py), which allows there only what input_roots allow
        raise NotNative(f"input file {location} is now behind a link")
    obj = file_object(path)
    if value.get("basename") not in (None, obj["basename"]):
        raise NotNative("a File input renamed through basename")
    _, obj[SHA256_KEY] = digests(path)  # its identity in the run's provenance
    return obj


def _input_value(value: Any, base: Path, confined: bool) -> Any:
    if isinstance(value, list):
        return [_input_value(v, base, confined) for v in value]
    if isinstance(value, dict):
        if value.get("class") != "File":
            raise NotNative("a record or Directory input")
        return _input_file(value, base, confined)
    return value


def read_job(
    process: NativeTool | NativeWorkflow, job_file: str | None, confined: bool = False
) -> dict[str, Any]:
    """The validated input object: values, defaults, File objects with real paths.
    ``confined`` (a run the server queued): an input file now reached through a link
    declines the native path."""
    raw: Any = {}
    if job_file is not None:
        job_path = Path(os.path.realpath(job_file))  # Path.resolve, without its overhead
        raw = read_yaml(job_path)
        base = job_path.parent
    else:
        base = Path.cwd()
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise NotNative("the input object is not a mapping")
    if any(not isinstance(k, str) or ":" in k or k.startswith("$") for k in raw):
        raise NotNative("input object directives")
    job: dict[str, Any] = {}
    for param in process.inputs:
        value = raw.get(param.name)
        if value is None and param.has_default:
            value = param.default
        value = _input_value(value, base, confined)
        if not matches(value, param.type):
            raise NotNative(f"input {param.name} does not match its type")
        job[param.name] = value
    return job


# -- final outputs ------------------------------------------------------------------
def relocate(outputs: Any, outdir: str, work_dir: Path, copy: bool) -> Any:
    """Move (or copy) final output files into ``outdir``, as cwltool prints them."""
    os.makedirs(outdir, exist_ok=True)
    used: set[str] = set()
    suffix: dict[str, int] = {}  # next _N to try per name: many equal names stay linear
    work = str(work_dir) + os.sep

    def place(obj: dict[str, Any]) -> dict[str, Any]:
        src = obj["path"]
        target = unique = os.path.join(outdir, obj["basename"])
        n = suffix.get(target, 1)
        while unique in used:
            n += 1
            unique = f"{target}_{n}"
        suffix[target] = n
        used.add(unique)
        if src != unique:
            _transfer(src, unique, move=src.startswith(work) and not copy)
        return {
            "location": file_uri(unique),
            "basename": obj["basename"],
            "class": "File",
            "checksum": obj["checksum"] if "checksum" in obj else sha1_of(unique),
            "size": obj["size"] if "size" in obj else os.stat(unique).st_size,
            "path": unique,
        }

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            if value.get("class") == "File":
                return place(value)
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(outputs)


def _transfer(src: str, dst: str, move: bool) -> None:
    """Move a work file (one rename on the same disk) or copy a file we do not own."""
    if move:
        try:
            os.replace(src, dst)
            return
        except OSError:
            shutil.move(src, dst)  # another file system: copy and delete
            return
    try:
        shutil.copy2(src, dst)
    except shutil.SameFileError:
        pass


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each message."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _configure_logging(quiet: bool) -> None:
    """cwltool's console format (``INFO [step x] completed success``) on stderr."""
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.handlers = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


# -- running ------------------------------------------------------------------------
def try_native(argv: list[str], options: RunOptions, stdout: Any = None) -> int | None:
    """Run ``argv`` natively and return the exit code; None when cwltool must run it."""
    try:
        document, job_file, outdir, quiet = parse_argv(argv)
        process = load_native(document)
        if process.docker_hint and "--no-container" not in argv:
            from twinengine.workflows.containers import working_container_engine

            if working_container_engine() is not None:
                raise NotNative("a DockerRequirement hint, and a container engine to honour it")
        job = read_job(process, job_file)
    except NotNative as exc:
        log.debug("native path declined: %s", exc)
        return None
    _configure_logging(quiet)
    options.loader = "native"
    return execute(process, job, str(Path(document).resolve()), outdir, options, stdout)


def execute(
    process: NativeTool | NativeWorkflow,
    job: dict[str, Any],
    document: str,
    outdir: str,
    options: RunOptions,
    stdout: Any = None,
    settings: Any = None,
) -> int:
    """Run a loaded native process on a validated input object; prints the outputs.
    ``settings``: the server's, when it is not this process's (default)."""
    from twinengine.workflows.session import RunSession

    try:  # a folder the outputs cannot go to is known before anything runs
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(
            f"cannot use {outdir} as the output folder: {exc.strerror or exc}",
            hint="give --outdir a folder you can write to",
        ) from None
    session = RunSession(
        options, workflow=document, job_order=job, outdir=outdir, settings=settings
    )
    session.begin()
    rc = RunContext(
        session.work_dir, session.tmp_dir, spare=SparePool(session.settings.home / "spare")
    )
    try:
        with session.executing() as scheduler:
            out, status = scheduler.run(process, job, rc)
        if status == "success":
            try:
                out = relocate(out, session.outdir or outdir, session.work_dir, options.cache)
            except OSError as exc:  # disk full, folder removed meanwhile …: outputs stay put
                session.fail(State.FAILED, f"cannot move the outputs to {outdir}: {exc}")
                raise InvalidInputError(
                    f"the run succeeded but its outputs could not be moved to {outdir}: {exc}",
                    hint=f"they are still in {session.work_dir}; `twin runs resume "
                    f"{session.run_id}` after fixing the folder moves them",
                ) from None
    except InvalidInputError:
        raise
    except BaseException as exc:
        session.fail(State.INTERRUPTED, repr(exc))
        raise
    state = session.finish(out, status)
    stream = stdout or sys.stdout
    if state == State.SUCCEEDED:
        stream.write(json.dumps(out, indent=4, ensure_ascii=False))
        stream.flush()
        log.info("Final process status is %s", status)
        return 0
    log.warning("Final process status is %s", status)
    if out:
        stream.write(json.dumps(out, indent=4, ensure_ascii=False))
        stream.flush()
    return 1

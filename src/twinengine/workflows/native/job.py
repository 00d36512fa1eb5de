"""A native CommandLineTool job: its folders, command line, and collected outputs.

:class:`NativeJob` is what the scheduler runs for a :class:`~.tool.NativeTool`: the
command line in cwltool's binding order and argument rules, the environment (HOME,
TMPDIR, PATH and EnvVarRequirement), and — after the command ran — the outputs (globs,
``stdout``/``stderr`` captures, ``cwl.output.json``) as File objects with SHA-1 checksums
and sizes. :class:`RunContext` hands out the job folders (spare ones first). A job of a
sandboxed run says what its sandbox shows (its folders writable, its input files
read-only, the network when ``NetworkAccess`` allows); its globs are expanded only
inside its working folder (``confined_glob``), every match and ``cwl.output.json`` path
must lead there or to its inputs (``check_output``), and what the run process reads of
them is bounded (``OutputBudget``; all of :mod:`twinengine.workflows.sandbox`).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import locale
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from twinengine.core import get_settings, new_id
from twinengine.core.errors import InvalidInputError
from twinengine.workflows.executors.base import JobResult, JobSpec
from twinengine.workflows.executors.startable import check_startable
from twinengine.workflows.native.document import (
    file_path,
    matches,
    optional,
)
from twinengine.workflows.outcome import command_outcome
from twinengine.workflows.sandbox import (
    CUSTOM_OUTPUT_LIMIT,
    Mount,
    OutputBudget,
    check_output,
    confined_glob,
)
from twinengine.workflows.scratch import SparePool

if TYPE_CHECKING:
    from twinengine.workflows.native.tool import NativeTool


@dataclass
class RunContext:
    """Where a native run's jobs work (the run's folders) and what stops it."""

    work_dir: Path
    tmp_dir: Path
    on_error: str = "stop"
    spare: SparePool | None = None  # empty folders left by earlier runs
    spare_tmpdirs: list[str] = field(default_factory=list)

    def _folder(self, parent: Path, name: str) -> str:
        """A new empty folder: one left by an earlier run (a rename) or a new one."""
        folder = self.spare.claim(parent, name) if self.spare else None
        if folder is None:
            folder = str(parent / name)
            os.mkdir(folder)
        return folder

    def take_outdir(self, name: str) -> str:
        """A new, empty output folder for a job."""
        return self._folder(self.work_dir, name)

    def take_tmpdir(self, name: str) -> str:
        """An empty temporary folder for a job: a finished job's when one is free.

        CWL promises each job an empty TMPDIR, not a never-used one; recycling the
        empty folders of finished jobs spares a mkdir per job (slow on some disks).
        """
        if self.spare_tmpdirs:  # checked empty when given back
            return self.spare_tmpdirs.pop()
        return self._folder(self.tmp_dir, name)

    def give_back_tmpdir(self, folder: str | None) -> None:
        if folder and _empty_dir(folder):
            self.spare_tmpdirs.append(folder)


def _empty_dir(folder: str) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def file_uri(path: str) -> str:
    """``file://`` URI of an absolute path (as ``Path.as_uri``, without its cost)."""
    return "file://" + quote(path)


def file_object(path: str, st: os.stat_result | None = None) -> dict[str, Any]:
    """A CWL File object for a local file, with basename parts and size."""
    basename = os.path.basename(path)
    root, ext = os.path.splitext(basename)
    return {
        "class": "File",
        "location": file_uri(path),
        "path": path,
        "basename": basename,
        "nameroot": root,
        "nameext": ext,
        "dirname": os.path.dirname(path),
        "size": (st or os.stat(path)).st_size,
    }


#: where a File object carries its SHA-256 (the provenance id of its content)
SHA256_KEY = "twin:sha256"


def sha1_of(path: str) -> str:
    return digests(path)[0]


def digests(path: str, handle: Any = None) -> tuple[str, str]:
    """``("sha1$…", sha256 hex)`` of a file, read once: CWL's checksum and provenance's
    (``handle``: the file already open, closed here)."""
    sha1 = hashlib.sha1()
    sha256 = hashlib.sha256()
    with handle or open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            sha1.update(chunk)
            sha256.update(chunk)
    return "sha1$" + sha1.hexdigest(), sha256.hexdigest()


def _cmp_position(a: list[Any], b: list[Any]) -> int:
    """cwltool's ordering of binding positions (Python 2 style mixed int/str compare)."""
    for i in range(max(len(a), len(b))):
        x = a[i] if i < len(a) else None
        y = b[i] if i < len(b) else None
        if x == y:
            continue
        if x is None:
            return -1
        if y is None:
            return 1
        if isinstance(x, str) or isinstance(y, str):
            return 1 if str(x) > str(y) else -1
        return 1 if x > y else -1
    return 0


_by_position = functools.cmp_to_key(lambda a, b: _cmp_position(a[0], b[0]))


def _tostr(value: Any) -> str:
    if isinstance(value, dict):  # a File: its path
        return str(value["path"])
    return str(value)


def generate_args(binding: dict[str, Any], value: Any) -> list[str]:
    """cwltool's ``Builder.generate_arg`` for the values the native path allows."""
    prefix = binding.get("prefix")
    separate = binding.get("separate", True)
    if isinstance(value, list):
        if not (binding.get("itemSeparator") and value):
            return [prefix] if prefix and value else []
        items = [binding["itemSeparator"].join(_tostr(v) for v in value)]
    elif isinstance(value, bool):
        return [prefix] if value and prefix else []
    elif value is None:
        return []
    else:
        items = [value]
    args: list[str] = []
    for item in items:
        if separate:
            args.extend(a for a in (prefix, _tostr(item)) if a is not None)
        else:
            args.append(_tostr(item) if prefix is None else prefix + _tostr(item))
    return args


class NativeJob:
    """One invocation of a :class:`NativeTool`: command line and output collection.

    Input files are used where they are: no InitialWorkDir, no Directory and no
    renamed File reach the native path, so the symlinks cwltool makes in a staging
    folder for each input would only cost a mkdir and a symlink per file and step.
    The command sees each file under its own name (the path given, not its target
    when that path is a symlink).
    """

    def __init__(self, tool: NativeTool, values: dict[str, Any], rc: RunContext) -> None:
        self.tool = tool
        self.name = new_id()
        self.rc = rc
        self.outdir = ""  # taken, with the temporary folder, when the job starts
        self.tmpdir: str | None = None
        self.cores, self.ram_mb = tool.cores, tool.ram_mb
        self.timelimit = tool.timelimit
        self.stdout, self.stderr = tool.stdout, tool.stderr
        self.roots: tuple[str, ...] | None = None  # sandboxed: where outputs may lead
        self.budget: OutputBudget | None = None  # sandboxed: what collecting may read
        bindings: list[tuple[list[Any], list[str]]] = [
            ([-1000000, i], [cmd]) for i, cmd in enumerate(tool.base_command)
        ]
        bindings.extend(tool.arguments)
        for param in tool.inputs:
            if param.binding is not None:
                position = [param.binding.get("position", 0), param.name]
                bindings.append((position, generate_args(param.binding, values[param.name])))
        bindings.sort(key=_by_position)
        self.argv = [arg for _, args in bindings for arg in args]
        self.inputs = [
            v["path"]
            for value in values.values()
            for v in (value if isinstance(value, list) else [value])
            if isinstance(v, dict) and v.get("class") == "File"
        ]

    def prepare(
        self,
        key: str,
        log_stdout: str | None,
        log_stderr: str | None,
        cores: int = 1,
        ram_mb: int = 0,
        sandbox: str | None = None,
    ) -> JobSpec:
        if not self.argv:
            raise InvalidInputError(
                "Cannot run a CommandLineTool that produces an empty command line. Specify a "
                "'baseCommand', 'arguments', and/or an input with an 'inputBinding'."
            )
        check_startable((), None, {"stdout": self.stdout, "stderr": self.stderr})
        self.outdir = self.rc.take_outdir(self.name)
        self.tmpdir = self.rc.take_tmpdir(self.name)
        env = {**self.tool.env, "HOME": self.outdir, "TMPDIR": self.tmpdir}
        env["PATH"] = os.environ.get("PATH", os.defpath)
        for extra in ("SYSTEMROOT", "QEMU_LD_PREFIX"):
            if extra in os.environ:
                env[extra] = os.environ[extra]
        spec = JobSpec(
            key=key,
            argv=self.argv,
            cwd=self.outdir,
            env=env,
            stdout_path=self._captured(self.stdout) or log_stdout,
            stderr_path=self._captured(self.stderr) or log_stderr,
            stdout_is_log=self.stdout is None,
            stderr_is_log=self.stderr is None,
            timelimit=self.timelimit,
            cores=cores,
            ram_mb=ram_mb,
            name=self.name,
        )
        if sandbox is not None:
            network = self.tool.effective.get("NetworkAccess", {}).get("networkAccess")
            spec.sandbox = sandbox
            spec.writable = (self.outdir, self.tmpdir)
            spec.readonly = tuple(Mount(path, path) for path in self.inputs)
            spec.network = network is True
            ram_max = self.tool.effective.get("ResourceRequirement", {}).get("ramMax", 0)
            spec.ram_max_mb = math.ceil(ram_max)  # a number: native tools take no expressions
            real = [os.path.realpath(path) for path in (self.outdir, *self.inputs)]
            self.roots = tuple(real)
        return spec

    def _captured(self, name: str | None) -> str | None:
        if name is None:
            return None
        path = os.path.join(self.outdir, name)
        if os.sep in name:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        return path

    def finish(self, result: JobResult) -> tuple[dict[str, Any], str, str | None]:
        """``(outputs, status, message)`` of the finished command (cwltool's rules)."""
        self.rc.give_back_tmpdir(self.tmpdir)
        self.tmpdir = None
        tool = self.tool
        status, message, ran = command_outcome(
            result, self.timelimit, tool.success, tool.temporary_fail, tool.permanent_fail
        )
        if not ran:
            return {}, status, message
        try:
            outputs = self.collect()
        except (OSError, ValueError, InvalidInputError) as exc:
            return {}, "permanentFail", f"cannot collect outputs: {exc}"
        return outputs, status, message

    def _confined(self, path: str) -> str:
        """``path``, refused when a sandboxed job's output leads outside its roots."""
        if self.roots is not None:
            check_output(path, self.outdir, self.roots)
        return path

    def _shown(self, path: str) -> str:
        """``path`` as the step names it: relative to its working folder."""
        return os.path.relpath(path, self.outdir) if path.startswith(self.outdir) else path

    def _file(self, path: str, st: os.stat_result | None = None) -> dict[str, Any]:
        """The File object of an output with its checksums; a sandboxed job's is read
        within its :class:`OutputBudget` (a regular file, bounded bytes, no large holes)."""
        if self.budget is None:
            return _with_checksum(file_object(path, st))
        handle = self.budget.open(path, self._shown(path))
        obj = file_object(path, os.fstat(handle.fileno()))
        obj["checksum"], obj[SHA256_KEY] = digests(path, handle)
        return obj

    def collect(self) -> dict[str, Any]:
        if self.roots is not None:
            self.budget = OutputBudget.from_settings(get_settings())
        custom = os.path.join(self.outdir, "cwl.output.json")
        if os.path.lexists(custom):
            return self._custom_outputs(self._confined(custom))
        outputs: dict[str, Any] = {}
        for name, t, patterns in self.tool.outputs:
            files = []
            for path in self._glob(patterns):
                st = os.stat(self._confined(path))
                if not stat.S_ISREG(st.st_mode):
                    raise InvalidInputError(f"output {name!r}: {self._shown(path)} is not a file")
                files.append(self._file(path, st))
            if isinstance(t, tuple) and t[0] == "array":
                outputs[name] = files
            elif not files:
                if not optional(t):
                    raise InvalidInputError(
                        f"Did not find output file with glob pattern: {patterns!r}."
                    )
                outputs[name] = None
            elif len(files) > 1:
                raise InvalidInputError("Multiple matches for output item that is a single file.")
            else:
                outputs[name] = files[0]
        return outputs

    def _glob(self, patterns: list[str]) -> list[str]:
        found: list[str] = []
        for pattern in patterns:
            if self.roots is not None:  # sandboxed: expanded only inside (or refused)
                matched = confined_glob(self.outdir, pattern, self.roots)
                if self.budget is not None:
                    self.budget.count(len(matched), pattern)
            elif not glob.has_magic(pattern):  # a plain name (most tools): one lookup
                path = os.path.join(self.outdir, pattern)
                matched = [path] if os.path.lexists(path) else []
            else:
                matched = glob.glob(os.path.join(glob.escape(self.outdir), pattern))
            if len(matched) > 1:
                matched.sort(key=functools.cmp_to_key(locale.strcoll))
            found.extend(matched)
        return found

    def _custom_outputs(self, custom: str) -> dict[str, Any]:
        if self.budget is not None:
            opened = self.budget.open(custom, "cwl.output.json", CUSTOM_OUTPUT_LIMIT)
        else:
            opened = open(custom, "rb")  # noqa: SIM115 - closed by the with below
        with opened as handle:
            raw = json.loads(handle.read().decode("utf-8"))
        if not isinstance(raw, dict):
            raise InvalidInputError("cwl.output.json is not a JSON object")
        outputs: dict[str, Any] = {}
        for name, t, _patterns in self.tool.outputs:
            value = self._resolve_custom(raw.get(name))
            if not matches(value, t):
                raise InvalidInputError(f"cwl.output.json: {name!r} is not a {t}")
            outputs[name] = value
        return outputs

    def _resolve_custom(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._resolve_custom(v) for v in value]
        if isinstance(value, dict) and value.get("class") == "File":
            location = value.get("location") or value.get("path")
            if not isinstance(location, str):
                raise InvalidInputError("cwl.output.json: a File without location")
            path = self._confined(str(file_path(location, Path(self.outdir))))
            if not os.path.isfile(path):
                raise InvalidInputError(f"cwl.output.json: {location} does not exist")
            if self.budget is not None:
                self.budget.count(1, location)
            return self._file(path)
        return value


def _with_checksum(obj: dict[str, Any]) -> dict[str, Any]:
    obj["checksum"], obj[SHA256_KEY] = digests(obj["path"])
    return obj

"""Native CWL processes: CommandLineTool jobs and Workflow walking without cwltool.

:class:`NativeTool` turns an input object into a :class:`NativeJob` — the command line
(cwltool's binding order and argument rules), environment (HOME, TMPDIR, PATH and
EnvVarRequirement) and, after the command ran, the collected outputs (globs, stdout and
stderr captures, ``cwl.output.json``) with SHA-1 checksums and sizes.
:class:`NativeWorkflow` submits each step when its sources have values and expands
dotproduct scatters; both plug into the same
:class:`~twinengine.workflows.scheduler.Scheduler` as cwltool-loaded processes.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import locale
import logging
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from twinengine.core import new_id
from twinengine.core.errors import InvalidInputError
from twinengine.workflows.executors.base import JobResult, JobSpec
from twinengine.workflows.native.document import (
    NotNative,
    assignable,
    check_plain,
    entries,
    file_path,
    matches,
    only_keys,
    optional,
    parse_type,
    read_yaml,
    requirements,
)
from twinengine.workflows.outcome import command_outcome
from twinengine.workflows.scratch import SparePool

if TYPE_CHECKING:
    from twinengine.workflows.scheduler import Callback, Scheduler

log = logging.getLogger("twinengine.workflows")

_TOOL_FIELDS = {
    "cwlVersion", "class", "id", "label", "doc", "baseCommand", "arguments", "inputs",
    "outputs", "stdout", "stderr", "requirements", "hints", "successCodes",
    "temporaryFailCodes", "permanentFailCodes",
}  # fmt: skip
_WORKFLOW_FIELDS = {
    "cwlVersion", "class", "id", "label", "doc", "inputs", "outputs", "steps",
    "requirements", "hints",
}  # fmt: skip
_BINDING_FIELDS = {"position", "prefix", "separate", "itemSeparator"}


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


@dataclass
class Param:
    name: str
    type: Any
    binding: dict[str, Any] | None = None
    default: Any = None
    has_default: bool = False


def _literal_default(fields: dict[str, Any], t: Any, where: str) -> tuple[Any, bool]:
    if "default" not in fields:
        return None, False
    value = fields["default"]
    if not matches(value, t) or "File" in json.dumps(value):
        raise NotNative(f"{where}: default {value!r}")
    return value, True


def merge_requirements(*layers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Effective requirements by class; later layers override earlier ones."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for req in layer:
            merged[req["class"]] = req
    return merged


def find_requirement(process: Any, name: str) -> tuple[dict[str, Any] | None, bool]:
    """cwltool's ``get_requirement``: ``(requirement, True)``, ``(hint, False)`` or nothing."""
    for items, required in ((process.requirements, True), (process.hints, False)):
        for req in reversed(items):
            if req["class"] == name:
                return req, required
    return None, False


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


def sha1_of(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return "sha1$" + digest.hexdigest()


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


class NativeTool:
    """A CommandLineTool the native path runs."""

    native = True

    def __init__(
        self,
        doc: dict[str, Any],
        tool_id: str,
        inherited: list[dict[str, Any]] | None = None,
        inherited_hints: list[dict[str, Any]] | None = None,
    ) -> None:
        where = tool_id
        only_keys(doc, _TOOL_FIELDS, where)
        self.tool = {**doc, "id": tool_id}
        own_reqs = requirements(doc, "requirements", where)
        own_hints = requirements(doc, "hints", where)
        self.requirements = [*(inherited or []), *own_reqs]
        self.hints = [*(inherited_hints or []), *own_hints]
        self.effective = merge_requirements(self.hints, self.requirements)
        self.base_command = _strings(doc.get("baseCommand", []), f"{where} baseCommand")
        self.arguments = self._arguments(doc.get("arguments", []), where)
        self.inputs = [self._input(n, f, where) for n, f in entries(doc.get("inputs"), where)]
        self.stdout: str | None = doc.get("stdout")
        self.stderr: str | None = doc.get("stderr")
        for stream in ("stdout", "stderr"):
            if stream in doc and not isinstance(doc[stream], str):
                raise NotNative(f"{where}: {stream}")
        self.outputs = [
            self._output(n, f, where, doc) for n, f in entries(doc.get("outputs"), where)
        ]
        self.success = self._codes(doc, "successCodes")
        self.temporary_fail = self._codes(doc, "temporaryFailCodes")
        self.permanent_fail = self._codes(doc, "permanentFailCodes")
        self.cores, self.ram_mb = self._resources()
        env = self.effective.get("EnvVarRequirement", {}).get("envDef", {})
        self.env = self._env(env, where)
        limit = self.effective.get("ToolTimeLimit", {}).get("timelimit", 0)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise NotNative(f"{where}: ToolTimeLimit {limit!r}")
        self.timelimit = limit or None

    # -- loading ------------------------------------------------------------------
    @staticmethod
    def _codes(doc: dict[str, Any], name: str) -> list[int]:
        codes = doc.get(name, [])
        if not isinstance(codes, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) for c in codes
        ):
            raise NotNative(f"{name} {codes!r}")
        return codes

    @staticmethod
    def _arguments(raw: Any, where: str) -> list[tuple[list[Any], list[str]]]:
        if not isinstance(raw, list):
            raise NotNative(f"{where}: arguments")
        out: list[tuple[list[Any], list[str]]] = []
        for i, arg in enumerate(raw):
            if isinstance(arg, str):
                out.append(([0, i], [arg]))
            elif isinstance(arg, dict):
                only_keys(
                    arg, {"valueFrom", "position", "prefix", "separate"}, f"{where} arguments"
                )
                binding = _binding_fields(arg, where)
                position = arg.get("position") or 0
                value = arg.get("valueFrom")
                if value is not None and not isinstance(value, str):
                    raise NotNative(f"{where}: argument valueFrom {value!r}")
                out.append(([position, i], _generate(binding, value)))
            else:
                raise NotNative(f"{where}: argument {arg!r}")
        return out

    @staticmethod
    def _input(name: str, fields: dict[str, Any], where: str) -> Param:
        only_keys(fields, {"type", "inputBinding", "default", "label", "doc"}, f"{where} {name}")
        t = parse_type(fields.get("type"))
        binding = fields.get("inputBinding")
        if binding is not None:
            binding = _binding_fields(only_keys(binding, _BINDING_FIELDS, f"{where} {name}"), where)
            text = json.dumps(t)
            if "float" in text or "double" in text:
                raise NotNative(f"{where}: {name}: a floating-point value on the command line")
            if "array" in text and "itemSeparator" not in binding:
                raise NotNative(f"{where}: {name}: an array bound without itemSeparator")
        default, has_default = _literal_default(fields, t, f"{where} {name}")
        return Param(name, t, binding, default, has_default)

    def _output(
        self, name: str, fields: dict[str, Any], where: str, doc: dict[str, Any]
    ) -> tuple[str, Any, list[str]]:
        only_keys(fields, {"type", "outputBinding", "label", "doc"}, f"{where} {name}")
        raw = fields.get("type")
        if raw in ("stdout", "stderr"):
            if "outputBinding" in fields:
                raise NotNative(f"{where}: {name}: outputBinding with {raw}")
            current = getattr(self, raw)
            if current is None:
                current = hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()
                setattr(self, raw, current)
            return name, "File", [current]
        t = parse_type(raw)
        if t not in ("File", ("array", "File"), ("union", ("null", "File"))):
            raise NotNative(f"{where}: output {name} of type {raw!r}")
        binding = only_keys(fields.get("outputBinding") or {}, {"glob"}, f"{where} {name}")
        patterns = binding.get("glob", [])  # none: only cwl.output.json can provide it
        patterns = [patterns] if isinstance(patterns, str) else patterns
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise NotNative(f"{where}: output {name} glob")
        if any(p.startswith("/") for p in patterns):
            raise NotNative(f"{where}: output {name} glob starts with '/'")
        return name, t, patterns

    def _resources(self) -> tuple[int, int]:
        req = self.effective.get("ResourceRequirement", {})
        for key, value in req.items():
            if key != "class" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
                raise NotNative(f"ResourceRequirement {key}: {value!r}")
        cores = req.get("coresMin", req.get("coresMax", 1))
        ram = req.get("ramMin", req.get("ramMax", 256))
        return max(1, math.ceil(cores)), math.ceil(ram)

    @staticmethod
    def _env(env: Any, where: str) -> dict[str, str]:
        if isinstance(env, dict):
            pairs = list(env.items())
        elif isinstance(env, list):
            pairs = []
            for item in env:
                only_keys(item, {"envName", "envValue"}, f"{where} envDef")
                pairs.append((item.get("envName"), item.get("envValue")))
        else:
            raise NotNative(f"{where}: envDef")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs):
            raise NotNative(f"{where}: envDef values")
        return dict(pairs)

    # -- Scheduler interface ------------------------------------------------------
    def get_requirement(self, name: str) -> tuple[dict[str, Any] | None, bool]:
        return find_requirement(self, name)

    def make_job(self, job_order: dict[str, Any], rc: RunContext) -> NativeJob:
        values: dict[str, Any] = {}
        for param in self.inputs:
            value = job_order.get(param.name)
            if value is None and param.has_default:
                value = param.default
            if not matches(value, param.type):
                if value is None and not optional(param.type):
                    raise InvalidInputError(f"input {param.name!r} is required but has no value")
                raise InvalidInputError(f"input {param.name!r}: {value!r} is not a {param.type}")
            values[param.name] = value
        return NativeJob(self, values, rc)


def _strings(value: Any, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise NotNative(where)
    return items


def _binding_fields(binding: dict[str, Any], where: str) -> dict[str, Any]:
    kinds = {"position": int, "prefix": str, "separate": bool, "itemSeparator": str}
    for key, kind in kinds.items():
        if key in binding and (
            not isinstance(binding[key], kind) or (kind is int and isinstance(binding[key], bool))
        ):
            raise NotNative(f"{where}: binding {key} {binding[key]!r}")
    if binding.get("separate") is False and binding.get("prefix") is None:
        raise NotNative(f"{where}: 'separate' without a prefix")
    return binding


def _tostr(value: Any) -> str:
    if isinstance(value, dict):  # a File: its path
        return str(value["path"])
    return str(value)


def _generate(binding: dict[str, Any], value: Any) -> list[str]:
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
        bindings: list[tuple[list[Any], list[str]]] = [
            ([-1000000, i], [cmd]) for i, cmd in enumerate(tool.base_command)
        ]
        bindings.extend(tool.arguments)
        for param in tool.inputs:
            if param.binding is not None:
                position = [param.binding.get("position", 0), param.name]
                bindings.append((position, _generate(param.binding, values[param.name])))
        bindings.sort(key=_by_position)
        self.argv = [arg for _, args in bindings for arg in args]

    def prepare(
        self,
        key: str,
        log_stdout: str | None,
        log_stderr: str | None,
        cores: int = 1,
        ram_mb: int = 0,
    ) -> JobSpec:
        if not self.argv:
            raise InvalidInputError(
                "Cannot run a CommandLineTool that produces an empty command line. Specify a "
                "'baseCommand', 'arguments', and/or an input with an 'inputBinding'."
            )
        self.outdir = self.rc.take_outdir(self.name)
        self.tmpdir = self.rc.take_tmpdir(self.name)
        env = {**self.tool.env, "HOME": self.outdir, "TMPDIR": self.tmpdir}
        env["PATH"] = os.environ.get("PATH", os.defpath)
        for extra in ("SYSTEMROOT", "QEMU_LD_PREFIX"):
            if extra in os.environ:
                env[extra] = os.environ[extra]
        return JobSpec(
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

    def collect(self) -> dict[str, Any]:
        custom = os.path.join(self.outdir, "cwl.output.json")
        if os.path.exists(custom):
            return self._custom_outputs(custom)
        outputs: dict[str, Any] = {}
        for name, t, patterns in self.tool.outputs:
            files = []
            for path in self._glob(patterns):
                st = os.stat(path)
                if not stat.S_ISREG(st.st_mode):
                    raise InvalidInputError(f"output {name!r}: {path} is not a file")
                files.append(_with_checksum(file_object(path, st)))
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
            if not glob.has_magic(pattern):  # a plain name (most tools): one lookup
                path = os.path.join(self.outdir, pattern)
                if os.path.lexists(path):
                    found.append(path)
                continue
            matched = glob.glob(os.path.join(glob.escape(self.outdir), pattern))
            found.extend(sorted(matched, key=functools.cmp_to_key(locale.strcoll)))
        return found

    def _custom_outputs(self, custom: str) -> dict[str, Any]:
        with open(custom, encoding="utf-8") as handle:
            raw = json.load(handle)
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
            path = str(file_path(location, Path(self.outdir)))
            if not os.path.isfile(path):
                raise InvalidInputError(f"cwl.output.json: {location} does not exist")
            return _with_checksum(file_object(path))
        return value


def _with_checksum(obj: dict[str, Any]) -> dict[str, Any]:
    obj["checksum"] = sha1_of(obj["path"])
    return obj


# -- workflows ----------------------------------------------------------------------
@dataclass
class Step:
    name: str
    tool: NativeTool
    sources: dict[str, str | None]  # tool input -> workflow source ("x" or "step/out")
    defaults: dict[str, Any]
    outs: list[str]
    scatter: list[str] = field(default_factory=list)


class NativeWorkflow:
    """A Workflow of CommandLineTool steps (with dotproduct scatter) the native path runs."""

    native = True

    def __init__(self, doc: dict[str, Any], path: Path, tools: dict[Path, dict[str, Any]]) -> None:
        where = str(path)
        only_keys(doc, _WORKFLOW_FIELDS, where)
        self.tool = {**doc, "id": path.as_uri()}
        self.requirements = requirements(doc, "requirements", where)
        self.hints = requirements(doc, "hints", where)
        self.inputs: list[Param] = []
        for name, fields in entries(doc.get("inputs"), where):
            only_keys(fields, {"type", "default", "label", "doc"}, f"{where} {name}")
            t = parse_type(fields.get("type"))
            default, has_default = _literal_default(fields, t, f"{where} {name}")
            self.inputs.append(Param(name, t, None, default, has_default))
        types: dict[str, Any] = {p.name: p.type for p in self.inputs}
        self.steps: list[Step] = []
        for name, fields in entries(doc.get("steps"), where, shorthand=""):
            step = self._step(name, fields, path, tools, types)
            self.steps.append(step)
        self.outputs: list[tuple[str, str]] = []
        for name, fields in entries(doc.get("outputs"), where):
            only_keys(fields, {"type", "outputSource", "label", "doc"}, f"{where} {name}")
            t = parse_type(fields.get("type"))
            source = fields.get("outputSource")
            if not isinstance(source, str) or source not in types:
                raise NotNative(f"{where}: output {name} source {source!r}")
            if not assignable(types[source], t):
                raise NotNative(f"{where}: output {name} type")
            self.outputs.append((name, source))

    def _step(
        self,
        name: str,
        fields: dict[str, Any],
        path: Path,
        tools: dict[Path, dict[str, Any]],
        types: dict[str, Any],
    ) -> Step:
        where = f"{path} step {name}"
        allowed = {"run", "in", "out", "scatter", "scatterMethod", "label", "doc"}
        only_keys(fields, allowed | {"requirements", "hints"}, where)
        reqs = requirements(fields, "requirements", where)
        hints = requirements(fields, "hints", where)
        run = fields.get("run")
        if isinstance(run, str):
            if "#" in run or "://" in run:
                raise NotNative(f"{where}: run {run!r}")
            tool_path = (path.parent / run).resolve()
            doc = tools.get(tool_path)
            if doc is None:
                doc = tools[tool_path] = load_plain(tool_path)
            tool_id = tool_path.as_uri()
        elif isinstance(run, dict):
            doc, tool_id = run, f"{path.as_uri()}#{name}/run"
        else:
            raise NotNative(f"{where}: run")
        if doc.get("class") != "CommandLineTool":
            raise NotNative(f"{where}: runs a {doc.get('class')}")
        if doc.get("cwlVersion", "v1.2") != "v1.2":
            raise NotNative(f"{where}: cwlVersion {doc.get('cwlVersion')}")
        tool = NativeTool(
            {k: v for k, v in doc.items() if k != "cwlVersion"},
            tool_id,
            [*self.requirements, *reqs],
            [*self.hints, *hints],
        )
        tool_inputs = {p.name: p for p in tool.inputs}
        sources: dict[str, str | None] = {}
        defaults: dict[str, Any] = {}
        for in_name, spec in entries(fields.get("in"), f"{where} in", shorthand="source"):
            only_keys(spec, {"source", "default"}, f"{where} in {in_name}")
            if in_name not in tool_inputs:
                raise NotNative(f"{where}: {in_name} is not an input of the tool")
            source = spec.get("source")
            if source is not None and (not isinstance(source, str) or source not in types):
                raise NotNative(f"{where}: source {source!r}")
            sources[in_name] = source
            if "default" in spec:
                defaults[in_name], _ = _literal_default(spec, tool_inputs[in_name].type, where)
        scatter = fields.get("scatter", [])
        scatter = [scatter] if isinstance(scatter, str) else scatter
        if not isinstance(scatter, list) or not all(s in sources for s in scatter):
            raise NotNative(f"{where}: scatter {scatter!r}")
        method = fields.get("scatterMethod")
        if scatter and (method or ("dotproduct" if len(scatter) == 1 else None)) != "dotproduct":
            raise NotNative(f"{where}: scatterMethod {method!r}")
        if scatter and "ScatterFeatureRequirement" not in merge_requirements(
            self.requirements, reqs
        ):
            raise NotNative(f"{where}: scatter without ScatterFeatureRequirement")
        for in_name, param in tool_inputs.items():
            source = sources.get(in_name)
            if source is None:
                if not (in_name in defaults or param.has_default or optional(param.type)):
                    raise NotNative(f"{where}: required input {in_name} is not connected")
                continue
            sink = ("array", param.type) if in_name in scatter else param.type
            if not assignable(types[source], sink):
                raise NotNative(f"{where}: {source} does not fit {in_name}")
        outs = fields.get("out", [])
        if not isinstance(outs, list):
            raise NotNative(f"{where}: out")
        out_names = [o if isinstance(o, str) else (o or {}).get("id") for o in outs]
        tool_outputs = {n: t for n, t, _ in tool.outputs}
        for out in out_names:
            if out not in tool_outputs:
                raise NotNative(f"{where}: out {out!r}")
            t = tool_outputs[out]
            types[f"{name}/{out}"] = ("array", t) if scatter else t
        return Step(name, tool, sources, defaults, out_names, scatter)

    # -- Scheduler interface ------------------------------------------------------
    def get_requirement(self, name: str) -> tuple[dict[str, Any] | None, bool]:
        return find_requirement(self, name)

    def start(
        self,
        scheduler: Scheduler,
        job_order: dict[str, Any],
        rc: RunContext,
        path: str,
        callback: Callback,
    ) -> None:
        WorkflowRun(self, scheduler, job_order, rc, path, callback).advance()


def load_plain(path: Path) -> dict[str, Any]:
    """Read a CWL file and check it has no directives or expressions."""
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise NotNative(f"{path} is not a CWL document")
    check_plain(doc, str(path))
    return doc


class WorkflowRun:
    """The state of one native workflow execution."""

    def __init__(
        self,
        workflow: NativeWorkflow,
        scheduler: Scheduler,
        job_order: dict[str, Any],
        rc: RunContext,
        path: str,
        callback: Callback,
    ) -> None:
        self.wf = workflow
        self.scheduler = scheduler
        self.rc = rc
        self.path = path
        self.callback = callback
        self.values: dict[str, Any] = {}
        for param in workflow.inputs:
            value = job_order.get(param.name)
            self.values[param.name] = (
                param.default if value is None and param.has_default else value
            )
        self.pending = list(workflow.steps)
        self.running = 0
        self.status = "success"
        self.done = False

    def advance(self) -> None:
        if self.done:
            return
        stopping = self.scheduler.stopping or (
            self.rc.on_error == "stop" and self.status != "success"
        )
        if not stopping:
            waiting = []
            for step in self.pending:
                if all(s is None or s in self.values for s in step.sources.values()):
                    self.running += 1
                    self.scheduler.soon(functools.partial(self._submit, step))
                else:
                    waiting.append(step)
            self.pending = waiting
        if self.running == 0:
            self._finish()

    def _submit(self, step: Step) -> None:
        job: dict[str, Any] = {}
        for name, source in step.sources.items():
            value = self.values.get(source) if source is not None else None
            if value is None and name in step.defaults:
                value = step.defaults[name]
            job[name] = value
        path = f"{self.path}/{step.name}"
        if not step.scatter:
            self.scheduler.start_process(
                step.tool, job, self.rc, path, functools.partial(self._step_done, step)
            )
            return
        lengths = {len(job[s]) for s in step.scatter}
        if len(lengths) > 1:
            log.error("[%s] Length of input arrays must be equal when performing dotproduct", path)
            self._step_done(step, {}, "permanentFail")
            return
        count = lengths.pop()
        results: list[dict[str, Any] | None] = [None] * count
        state = {"left": count, "status": "success"}
        if count == 0:
            self._step_done(step, {out: [] for out in step.outs}, "success")
            return

        def receive(index: int, outputs: dict[str, Any] | None, status: str) -> None:
            results[index] = outputs or {}
            if status != "success":
                state["status"] = "permanentFail"
            state["left"] -= 1
            if state["left"] == 0:
                merged = {out: [r.get(out) if r else None for r in results] for out in step.outs}
                self._step_done(step, merged, str(state["status"]))

        for i in range(count):
            item = dict(job)
            for s in step.scatter:
                item[s] = job[s][i]
            self.scheduler.start_process(
                step.tool, item, self.rc, f"{path}[{i}]", functools.partial(receive, i)
            )

    def _step_done(self, step: Step, outputs: dict[str, Any] | None, status: str) -> None:
        self.running -= 1
        path = f"{self.path}/{step.name}"
        if status == "success":
            outputs = outputs or {}
            for out in step.outs:
                self.values[f"{step.name}/{out}"] = outputs.get(out)
            log.info("[%s] completed %s", path, status)
        else:
            self.status = "permanentFail"
            log.warning("[%s] completed %s", path, status)
        self.advance()

    def _finish(self) -> None:
        self.done = True
        if self.pending and self.status == "success" and not self.scheduler.stopping:
            log.error("[%s] workflow cannot make any more progress", self.path)
            self.status = "permanentFail"
        outputs = {name: self.values.get(source) for name, source in self.wf.outputs}
        log.info("[%s] completed %s", self.path, self.status)
        self.callback(outputs, self.status)

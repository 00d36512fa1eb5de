"""A native CommandLineTool: the subset of CWL it accepts, checked once at load time.

:class:`NativeTool` reads a CommandLineTool document (inputs and their bindings,
literal arguments, outputs, stdout/stderr, success codes, requirements) and raises
:class:`~.document.NotNative` for anything outside the subset; ``make_job`` turns an
input object into a :class:`~.job.NativeJob`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinengine.core.errors import InvalidInputError
from twinengine.workflows.native.document import (
    NotNative,
    check_plain,
    entries,
    has_docker_hint,
    matches,
    only_keys,
    optional,
    parse_type,
    read_yaml,
    requirements,
)
from twinengine.workflows.native.job import NativeJob, RunContext, generate_args

_TOOL_FIELDS = {
    "cwlVersion", "class", "id", "label", "doc", "baseCommand", "arguments", "inputs",
    "outputs", "stdout", "stderr", "requirements", "hints", "successCodes",
    "temporaryFailCodes", "permanentFailCodes",
}  # fmt: skip
_BINDING_FIELDS = {"position", "prefix", "separate", "itemSeparator"}


@dataclass
class Param:
    name: str
    type: Any
    binding: dict[str, Any] | None = None
    default: Any = None
    has_default: bool = False


def literal_default(fields: dict[str, Any], t: Any, where: str) -> tuple[Any, bool]:
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
        self.docker_hint = has_docker_hint(self.hints)
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
                out.append(([position, i], generate_args(binding, value)))
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
        default, has_default = literal_default(fields, t, f"{where} {name}")
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


def load_plain(path: Path) -> dict[str, Any]:
    """Read a CWL file and check it has no directives or expressions."""
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise NotNative(f"{path} is not a CWL document")
    check_plain(doc, str(path))
    return doc

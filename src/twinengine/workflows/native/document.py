"""Reading CWL documents for the native path: YAML 1.2, and the subset it understands.

The native path takes a document only when every construct in it is one it implements
exactly as cwltool does; anything else raises :class:`NotNative` with the reason, and
the run goes through cwltool instead. So the subset can stay small and strict:

- ``cwlVersion: v1.2``; ``class`` CommandLineTool or Workflow; no ``$``-directives
  (``$import``, ``$include``, ``$namespaces``, ``$graph`` …) and no parameter references
  or expressions (``$(…)``, ``${…}``) anywhere;
- types ``null``, ``boolean``, ``int``, ``long``, ``float``, ``double``, ``string``,
  ``File``, arrays and unions of them (``?`` and ``[]`` shorthands included);
- requirements and hints: ResourceRequirement, EnvVarRequirement, ToolTimeLimit,
  WorkReuse, NetworkAccess, InlineJavascriptRequirement, ScatterFeatureRequirement,
  StepInputExpressionRequirement — all with literal values; and a DockerRequirement
  *hint* when no container engine is used (cwltool ignores it then too).

YAML is read with PyYAML's C parser under YAML 1.2 core-schema rules (``yes``/``on`` stay
strings, ``010`` is ten, dates stay strings) — the rules cwltool's ruamel loader uses.
Duplicate keys are an error there, so they send the document to cwltool here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from twinengine.core import get_settings
from twinengine.workflows.fileroots import registered_root


class NotNative(Exception):
    """The document (or run) needs cwltool; the message says why."""


# -- YAML 1.2 core schema on PyYAML's C parser ------------------------------------------
_DROPPED = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
}
_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE):  # type: ignore[misc,valid-type]
    pass


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_int(loader: Any, node: Any) -> int:
    value = loader.construct_scalar(node)
    if value.startswith("0o"):
        return int(value[2:], 8)
    if value.startswith("0x"):
        return int(value[2:], 16)
    return int(value, 10)


def _construct_mapping(loader: Any, node: Any) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise NotNative(f"duplicate key {key!r}")
        result[key] = loader.construct_object(value_node, deep=True)
    return result


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)


def read_yaml(path: Path) -> Any:
    """Parse a YAML or JSON file under YAML 1.2 rules (NotNative when it is not plain).
    A JSON object (a job file the server wrote) is read by the JSON parser, which gives
    what YAML 1.2 gives for JSON — duplicate keys refused alike — in a tenth of the time."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotNative(f"cannot read {path}: {exc}") from None
    if text.startswith("{"):
        try:
            return json.loads(text, object_pairs_hook=_json_mapping, parse_constant=_not_json)
        except ValueError:
            pass  # not strict JSON (NaN, a YAML flow mapping …): YAML decides
    try:
        return yaml.load(text, Loader=_Loader)  # _Loader derives from SafeLoader
    except yaml.YAMLError as exc:
        raise NotNative(f"YAML error in {path}: {exc}") from None


def _json_mapping(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise NotNative(f"duplicate key {key!r}")
        result[key] = value
    return result


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # YAML 1.2 reads NaN and Infinity as strings


def file_path(location: str, base: Path) -> Path:
    """A local path for a location (file URI, absolute or relative to ``base``)."""
    if "://" in location:
        parts = urlsplit(location)
        if parts.scheme != "file":
            raise NotNative(f"location {location!r} is not a local file")
        return Path(unquote(parts.path))
    return base / location


def step_document(document: Path, run: str, where: str) -> Path:
    """The file a step's ``run`` names, links resolved. A reference the native path does
    not follow raises :class:`NotNative` (cwltool decides): a URL or fragment, and, for a
    document registered on the server, one that leaves its upload folder — cwltool then
    loads it confined to that folder, and refuses it."""
    if "#" in run or "://" in run:
        raise NotNative(f"{where}: run {run!r}")
    target = (document.parent / run).resolve()
    root = registered_root(document, get_settings().home)
    if root is not None and not target.is_relative_to(root):
        raise NotNative(f"{where}: run {run!r} leaves the uploaded folder")
    return target


# -- types --------------------------------------------------------------------------
SCALARS = {"null", "boolean", "int", "long", "float", "double", "string", "File"}


def parse_type(raw: Any) -> Any:
    """A normalised type: a scalar name, ``("array", T)`` or ``("union", (T, ...))``."""
    if isinstance(raw, str):
        if raw.endswith("?"):
            return _union(("null", parse_type(raw[:-1])))
        if raw.endswith("[]"):
            return ("array", parse_type(raw[:-2]))
        if raw in SCALARS:
            return raw
        raise NotNative(f"type {raw!r}")
    if isinstance(raw, list):
        return _union(tuple(parse_type(t) for t in raw))
    if isinstance(raw, dict) and raw.get("type") == "array" and set(raw) <= {"type", "items"}:
        return ("array", parse_type(raw["items"]))
    raise NotNative(f"type {raw!r}")


def _union(members: tuple[Any, ...]) -> Any:
    flat: list[Any] = []
    for m in members:
        for t in m[1] if isinstance(m, tuple) and m[0] == "union" else (m,):
            if t not in flat:
                flat.append(t)
    return flat[0] if len(flat) == 1 else ("union", tuple(flat))


def members(t: Any) -> tuple[Any, ...]:
    return t[1] if isinstance(t, tuple) and t[0] == "union" else (t,)


def optional(t: Any) -> bool:
    return "null" in members(t)


def matches(value: Any, t: Any) -> bool:
    """True when ``value`` (an input-object value) has type ``t``."""
    for m in members(t):
        if isinstance(m, tuple):  # array
            if isinstance(value, list) and all(matches(v, m[1]) for v in value):
                return True
        elif _scalar_matches(value, m):
            return True
    return False


def _scalar_matches(value: Any, t: str) -> bool:
    if t == "null":
        return value is None
    if t == "boolean":
        return isinstance(value, bool)
    if t in ("int", "long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if t in ("float", "double"):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t == "string":
        return isinstance(value, str)
    return isinstance(value, dict) and value.get("class") == "File"


def assignable(source: Any, sink: Any) -> bool:
    """Static link check: every value of type ``source`` is, unchanged, valid for ``sink``.

    Deliberately strict (no int-to-float widening): a link it does not accept goes to
    cwltool, which reports a real mismatch with the file and line.
    """
    sink_members = members(sink)
    for s in members(source):
        if s in sink_members:
            continue
        if isinstance(s, tuple) and any(
            isinstance(k, tuple) and assignable(s[1], k[1]) for k in sink_members
        ):
            continue
        return False
    return True


# -- document checks ----------------------------------------------------------------
def check_plain(value: Any, where: str) -> None:
    """No ``$`` directives, no expressions, no parameter references anywhere."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$"):
                raise NotNative(f"{where}: directive {key!r}")
            check_plain(item, where)
    elif isinstance(value, list):
        for item in value:
            check_plain(item, where)
    elif isinstance(value, str):
        if "$(" in value or "${" in value:
            raise NotNative(f"{where}: expression {value!r}")
    elif not (value is None or isinstance(value, (bool, int, float))):
        raise NotNative(f"{where}: value {value!r}")


def only_keys(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise NotNative(f"{where} is not a mapping")
    extra = set(obj) - allowed
    if extra:
        raise NotNative(f"{where}: field(s) {', '.join(sorted(extra))}")
    return obj


def entries(section: Any, where: str, shorthand: str = "type") -> list[tuple[str, dict[str, Any]]]:
    """``[(name, fields)]`` of a map-or-list section (``inputs``, ``outputs``, ``steps``)."""
    out: list[tuple[str, dict[str, Any]]] = []
    if section is None:
        return out
    if isinstance(section, dict):
        for name, value in section.items():
            if isinstance(value, dict):
                if "id" in value:
                    raise NotNative(f"{where}: {name} has its own id")
                out.append((str(name), value))
            elif shorthand and isinstance(value, (str, list)):
                out.append((str(name), {shorthand: value}))
            else:
                raise NotNative(f"{where}: {name}")
    elif isinstance(section, list):
        for value in section:
            if not isinstance(value, dict) or not isinstance(value.get("id"), str):
                raise NotNative(f"{where}: an entry without an id")
            name = value["id"]
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", name):
                raise NotNative(f"{where}: id {name!r}")
            out.append((name, {k: v for k, v in value.items() if k != "id"}))
    else:
        raise NotNative(f"{where} is neither a map nor a list")
    names = [n for n, _ in out]
    if len(set(names)) != len(names):
        raise NotNative(f"{where}: duplicate ids")
    return out


_REQUIREMENTS = {
    "ResourceRequirement": {"coresMin", "coresMax", "ramMin", "ramMax", "tmpdirMin",
                            "tmpdirMax", "outdirMin", "outdirMax"},
    "EnvVarRequirement": {"envDef"},
    "ToolTimeLimit": {"timelimit"},
    "WorkReuse": {"enableReuse"},
    "NetworkAccess": {"networkAccess"},
    "InlineJavascriptRequirement": {"expressionLib"},
    "ScatterFeatureRequirement": set(),
    "StepInputExpressionRequirement": set(),
}  # fmt: skip


def requirements(obj: dict[str, Any], field: str, where: str) -> list[dict[str, Any]]:
    """The ``requirements`` or ``hints`` of a process or step, normalised to a list."""
    raw = obj.get(field)
    if raw is None:
        return []
    items: list[dict[str, Any]] = []
    if isinstance(raw, dict):
        for cls, body in raw.items():
            if not isinstance(body, dict):
                raise NotNative(f"{where}: {field} {cls}")
            items.append({"class": cls, **body})
    elif isinstance(raw, list):
        items = [dict(r) for r in raw if isinstance(r, dict)]
        if len(items) != len(raw):
            raise NotNative(f"{where}: {field}")
    else:
        raise NotNative(f"{where}: {field}")
    for req in items:
        cls = req.get("class")
        if cls == "DockerRequirement" and field == "hints":
            # a hint only: ignored when no container engine is used (see has_docker_hint)
            only_keys(req, _DOCKER_FIELDS | {"class"}, f"{where} {cls}")
            continue
        if cls not in _REQUIREMENTS:
            raise NotNative(f"{where}: {field} {cls}")
        only_keys(req, _REQUIREMENTS[cls] | {"class"}, f"{where} {cls}")
    return items


_DOCKER_FIELDS = {
    "dockerPull", "dockerLoad", "dockerFile", "dockerImport", "dockerImageId",
    "dockerOutputDirectory",
}  # fmt: skip


def has_docker_hint(reqs: list[dict[str, Any]]) -> bool:
    return any(r.get("class") == "DockerRequirement" for r in reqs)

"""Triggers: which events start which workflow, and with what inputs.

A trigger is a YAML (or JSON) document::

    name: new-gauge-file
    source: incoming              # an event source's name, or "runs" (run completions)
    filter:                       # all optional; every given test must pass
      key: "*.csv"                # glob on the event key  (or key_regex: ...)
      kinds: [created]
      min_size: 1
      max_size: 10000000
      content_type: "text/*"
      metadata: {station: "A*"}   # globs on metadata values
      states: [succeeded]         # for source "runs": the ended run's state
      workflow: hello-twin        # for source "runs": the ended run's workflow name
      own_runs: false             # for source "runs": also the runs this trigger started
    function: clean-csv           # optional pre-processing function (its result: $result)
    workflow: hello-twin          # a registered workflow's name (latest version) or id
    inputs:                       # workflow input -> value; strings starting with $ are
      data: $file                 #   taken from the event: $file (the object as a File),
      label: $key                 #   $key $kind $version $size $source $location $time
      threshold: 3.5              #   $data $data.a.b $metadata.x $result $result.x
    concurrency: 2                # at most this many of its runs at once (0: no limit)
    batch: {size: 10, seconds: 30}   # optional: one run per 10 events or 30 s; then
                                     # $files / $events / $keys give lists
    approval: false               # true: a person approves each run first (UI / CLI)
    retries: {attempts: 5, backoff: 2.0, max_delay: 300}
    condition:                    # optional: fire only when it holds (see conditions.py)
      threshold: {value: $data.level, above: 4.5}

:func:`parse_trigger` checks a definition (YAML within the bounds of
:func:`~twinengine.core.boundedyaml.load_definition`; ``key_regex`` compiled by RE2, see
:mod:`~twinengine.events.patterns`) and raises :class:`ConfigError` naming the field;
:func:`accepts`, :func:`matches` and :func:`map_inputs` are what the engine applies to
events. A trigger on ``runs`` never fires on a run it started itself (that would loop)
unless its filter says ``own_runs: true``.
"""

from __future__ import annotations

import re
from typing import Any

from twinengine.core import ConfigError, InvalidInputError
from twinengine.core.boundedyaml import load_definition
from twinengine.events.conditions import parse_condition
from twinengine.events.patterns import check_glob, compile_regex, glob_matches, regex_finds
from twinengine.workflows.safetext import check_value

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TOP = {
    "name",
    "project",
    "source",
    "filter",
    "function",
    "workflow",
    "inputs",
    "concurrency",
    "batch",
    "approval",
    "retries",
    "condition",
    "description",
    "notify",
}
_FILTER = {
    "key",
    "key_regex",
    "kinds",
    "min_size",
    "max_size",
    "content_type",
    "metadata",
    "states",
    "workflow",
    "own_runs",
}
_EVENT_FIELDS = {"key", "kind", "version", "size", "source", "location", "time", "content_type"}


def _fail(name: str, field: str, problem: str) -> ConfigError:
    return ConfigError(f"trigger {name!r}: {field}: {problem}")


def _number(name: str, where: str, value: Any, low: float = 0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise _fail(name, where, f"must be a number ≥ {low:g}, got {value!r}")
    return float(value)


def parse_trigger(source: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """A checked trigger definition (YAML/JSON text or a mapping), defaults filled in."""
    if isinstance(source, str | bytes):
        doc = load_definition(source, "the trigger definition")
    else:
        doc = source
    if not isinstance(doc, dict):
        raise ConfigError("a trigger is a mapping with at least name, source and workflow")
    name = doc.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError("trigger: name: 1-64 letters, digits, '.', '_' or '-' is required")
    unknown = sorted(set(doc) - _TOP)
    if unknown:
        raise _fail(name, unknown[0], "unknown field; known: " + ", ".join(sorted(_TOP)))
    for field in ("source", "workflow"):
        if not isinstance(doc.get(field), str) or not doc[field]:
            raise _fail(name, field, "is required (a name)")
    spec = dict(doc)
    spec["filter"] = _parse_filter(name, doc.get("filter") or {})
    inputs = doc.get("inputs") or {}
    if not isinstance(inputs, dict):
        raise _fail(name, "inputs", "must map workflow inputs to values")
    for key, value in inputs.items():
        _check_reference(name, f"inputs.{key}", value, batched=bool(doc.get("batch")))
    try:
        check_value(inputs, "input")  # a NUL … could never reach a program
    except InvalidInputError as exc:
        raise _fail(name, "inputs", exc.message) from None
    spec["inputs"] = inputs
    spec["concurrency"] = int(_number(name, "concurrency", doc.get("concurrency", 0)))
    spec["batch"] = _parse_batch(name, doc.get("batch"))
    if not isinstance(doc.get("approval", False), bool):
        raise _fail(name, "approval", "must be true or false")
    spec["approval"] = bool(doc.get("approval", False))
    retries = doc.get("retries") or {}
    if not isinstance(retries, dict) or set(retries) - {"attempts", "backoff", "max_delay"}:
        raise _fail(name, "retries", "takes attempts, backoff and max_delay")
    spec["retries"] = {
        "attempts": int(_number(name, "retries.attempts", retries.get("attempts", 5), 1)),
        "backoff": _number(name, "retries.backoff", retries.get("backoff", 2.0)),
        "max_delay": _number(name, "retries.max_delay", retries.get("max_delay", 300)),
    }
    if doc.get("function") is not None and not isinstance(doc["function"], str):
        raise _fail(name, "function", "must be a function's name")
    if doc.get("condition") is not None:
        spec["condition"] = parse_condition(name, doc["condition"])
    return spec


def _parse_filter(name: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise _fail(name, "filter", "must be a mapping")
    unknown = sorted(set(raw) - _FILTER)
    if unknown:
        raise _fail(name, f"filter.{unknown[0]}", "unknown; known: " + ", ".join(sorted(_FILTER)))
    out = dict(raw)
    if "key_regex" in raw:
        try:
            compile_regex(raw["key_regex"])
        except ConfigError as exc:
            message = f"trigger {name!r}: filter.key_regex: {exc.message}"
            raise ConfigError(message, hint=exc.hint) from None
    for field in ("key", "content_type"):
        if field in raw:
            try:
                check_glob(raw[field])
            except ConfigError as exc:
                raise _fail(name, f"filter.{field}", exc.message) from None
    if "own_runs" in raw and not isinstance(raw["own_runs"], bool):
        raise _fail(name, "filter.own_runs", "must be true or false")
    for field in ("kinds", "states"):
        if field in raw and not (
            isinstance(raw[field], list) and all(isinstance(v, str) for v in raw[field])
        ):
            raise _fail(name, f"filter.{field}", "must be a list of names")
    for field in ("min_size", "max_size"):
        if field in raw:
            _number(name, f"filter.{field}", raw[field])
    if "metadata" in raw:
        if not isinstance(raw["metadata"], dict):
            raise _fail(name, "filter.metadata", "must map metadata keys to globs")
        for key, pattern in raw["metadata"].items():
            try:
                check_glob(str(pattern))
            except ConfigError as exc:
                raise _fail(name, f"filter.metadata.{key}", exc.message) from None
    return out


def _parse_batch(name: str, raw: Any) -> dict[str, Any] | None:
    if raw is None or raw is False:
        return None
    if not isinstance(raw, dict) or not raw or set(raw) - {"size", "seconds"}:
        raise _fail(name, "batch", "takes size and/or seconds")
    size = int(_number(name, "batch.size", raw.get("size", 0)))
    seconds = _number(name, "batch.seconds", raw.get("seconds", 0))
    if size < 1 and seconds <= 0:
        raise _fail(name, "batch", "give size ≥ 1 or seconds > 0")
    return {"size": size, "seconds": seconds}


def _check_reference(name: str, where: str, value: Any, batched: bool) -> None:
    if not isinstance(value, str) or not value.startswith("$") or value.startswith("$$"):
        return
    head = value[1:].split(".", 1)[0]
    single = _EVENT_FIELDS | {"file", "data", "metadata", "result", "outputs", "run"}
    lists = {"files", "events", "keys"}
    if head in lists and not batched:
        raise _fail(name, where, f"{value} needs a batch (give batch: size/seconds)")
    if head not in single | lists:
        known = ", ".join(f"${n}" for n in sorted(single | lists))
        raise _fail(name, where, f"unknown reference {value}; known: {known}")


# -- applying a trigger to events ---------------------------------------------------------
def started_by(name: str) -> str:
    """What a run started by trigger ``name`` records as its ``created_by``."""
    return f"trigger:{name}"


def accepts(candidate: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether a trigger (``{name, project, spec}``) takes an event: its filter passes,
    and the event is not the end of a run the trigger started itself (unless its filter
    says ``own_runs: true``)."""
    spec = candidate["spec"]
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    if event.get("source") == "runs" and not (spec.get("filter") or {}).get("own_runs"):
        own = data.get("created_by") == started_by(candidate["name"])
        if own and data.get("project") == candidate.get("project"):
            return False
    return matches(spec, event)


def matches(spec: dict[str, Any], event: dict[str, Any]) -> bool:
    """Whether an event (as stored: Event.as_dict()) passes the trigger's filter."""
    rule = spec.get("filter") or {}
    key = event.get("key") or ""
    if "key" in rule and not glob_matches(key, rule["key"]):
        return False
    if "key_regex" in rule and not regex_finds(rule["key_regex"], key):
        return False
    if "kinds" in rule and event.get("kind") not in rule["kinds"]:
        return False
    size = event.get("size")
    if "min_size" in rule and (size is None or size < rule["min_size"]):
        return False
    if "max_size" in rule and (size is None or size > rule["max_size"]):
        return False
    if "content_type" in rule and not glob_matches(
        event.get("content_type") or "", rule["content_type"]
    ):
        return False
    metadata = event.get("metadata") or {}
    for field, pattern in (rule.get("metadata") or {}).items():
        if not glob_matches(str(metadata.get(field, "")), str(pattern)):
            return False
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    if "states" in rule and data.get("state") not in rule["states"]:
        return False
    return not ("workflow" in rule and data.get("workflow") != rule["workflow"])


def lookup(path: str, value: Any) -> Any:
    """``a.b.c`` inside nested mappings (None when missing)."""
    for part in [p for p in path.split(".") if p]:
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def as_file(event: dict[str, Any]) -> dict[str, Any]:
    """The event's object as a CWL File (its local path, or its URL as location)."""
    location = event.get("location") or event.get("key")
    if location and "://" not in location:
        return {"class": "File", "path": location}
    return {"class": "File", "location": location}


def resolve(value: Any, events: list[dict[str, Any]], result: Any = None) -> Any:
    """A trigger input value for ``events`` (one, or a batch) and a function result."""
    if isinstance(value, list):
        return [resolve(v, events, result) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, events, result) for k, v in value.items()}
    if not isinstance(value, str) or not value.startswith("$"):
        return value
    if value.startswith("$$"):
        return value[1:]  # an escaped literal dollar
    head, _, rest = value[1:].partition(".")
    if head == "files":
        return [as_file(e) for e in events]
    if head == "events":
        return events
    if head == "keys":
        return [e.get("key") for e in events]
    if head == "result":
        return lookup(rest, result)
    event = events[-1]
    if head == "file":
        return as_file(event)
    if head in ("outputs", "run"):  # run-completion events carry the ended run
        data = event.get("data") or {}
        return lookup(rest, data.get("outputs") if head == "outputs" else data)
    if head in ("data", "metadata"):
        return lookup(rest, event.get(head))
    return event.get(head)


def map_inputs(
    spec: dict[str, Any], events: list[dict[str, Any]], result: Any = None
) -> dict[str, Any]:
    """The workflow's input object for one run of the trigger."""
    out = {}
    for key, value in spec.get("inputs", {}).items():
        resolved = resolve(value, events, result)
        if resolved is not None:
            out[key] = resolved
    return out

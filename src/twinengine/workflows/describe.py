"""What a CWL process looks like from outside: its inputs, outputs and step graph.

:func:`describe` loads a document with cwltool (so everything a run would refuse is
refused here, with ``file:line:column``) and returns plain JSON: the class, label and
doc, each input and output with its type in CWL shorthand (``File``, ``string?``,
``int[]``), and a graph of input, step and output nodes with an edge for every source
→ sink connection. :func:`validation_errors` splits a validation message into
``{message, line, column}`` items for the API and the composer.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from twinengine.core import InvalidDocumentError
from twinengine.workflows.fetching import Confinement, scrub
from twinengine.workflows.fileroots import file_objects

_POSITION = re.compile(r"^(?P<file>[^\s:][^:\n]*):(?P<line>\d+):(?P<column>\d+):\s*(?P<msg>.*)$")


def type_name(cwl_type: Any) -> str:
    """A CWL type in shorthand: ``File``, ``string?``, ``int[]``, ``enum``, ``record``."""
    if isinstance(cwl_type, str):
        return cwl_type.rsplit("#", 1)[-1]
    if isinstance(cwl_type, list):
        rest = [t for t in cwl_type if t != "null"]
        inner = " | ".join(type_name(t) for t in rest) if rest else "null"
        return f"{inner}?" if len(rest) < len(cwl_type) else inner
    if isinstance(cwl_type, dict):
        kind = cwl_type.get("type")
        if kind == "array":
            return f"{type_name(cwl_type.get('items'))}[]"
        if kind in ("enum", "record"):
            return str(kind)
        return type_name(kind)
    return str(cwl_type)


def _relative(identifier: str, process_id: str) -> list[str]:
    """Path of ``identifier`` inside the process: ``[input]`` or ``[step, port]``."""
    if identifier.startswith(process_id):
        rest = identifier[len(process_id) :]
    else:
        rest = identifier.split("#", 1)[-1]
    return [part for part in rest.lstrip("#/").split("/") if part]


def _port(entry: dict[str, Any], process_id: str) -> dict[str, Any]:
    port: dict[str, Any] = {
        "id": _relative(entry["id"], process_id)[-1],
        "type": type_name(entry.get("type")),
        "label": entry.get("label"),
        "doc": entry.get("doc") if isinstance(entry.get("doc"), str) else None,
    }
    if "default" in entry:
        port["default"] = entry["default"]
    port["optional"] = port["type"].endswith("?") or "default" in entry
    return port


def _sources(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]


def interface(tool: dict[str, Any]) -> dict[str, Any]:
    """Inputs, outputs and graph of a loaded process document (cwltool's ``.tool``)."""
    process_id = tool.get("id", "")
    inputs = [_port(i, process_id) for i in tool.get("inputs", [])]
    outputs = [_port(o, process_id) for o in tool.get("outputs", [])]
    nodes = [{"id": i["id"], "kind": "input", "label": i["label"] or i["id"]} for i in inputs]
    edges: list[dict[str, str]] = []

    def endpoint(source: str) -> str:
        path = _relative(source, process_id)
        return path[0]

    for step in tool.get("steps", []):
        step_id = _relative(step["id"], process_id)[-1]
        run = step.get("run")
        run_class = run.get("class") if isinstance(run, dict) else None
        nodes.append(
            {
                "id": step_id,
                "kind": "step",
                "label": step.get("label") or step_id,
                "class": run_class,
            }
        )
        for sink in step.get("in", []):
            port = _relative(sink["id"], process_id)[-1]
            for source in _sources(sink.get("source")):
                edges.append({"source": endpoint(source), "target": step_id, "label": port})
    for out, entry in zip(outputs, tool.get("outputs", []), strict=True):
        nodes.append({"id": out["id"], "kind": "output", "label": out["label"] or out["id"]})
        for source in _sources(entry.get("outputSource")):
            path = _relative(source, process_id)
            edges.append({"source": path[0], "target": out["id"], "label": path[-1]})
    if not tool.get("steps"):  # a single tool: one step node between inputs and outputs
        name = tool.get("label") or tool.get("class", "tool")
        nodes.insert(
            len(inputs), {"id": "tool", "kind": "step", "label": name, "class": tool.get("class")}
        )
        edges += [{"source": i["id"], "target": "tool", "label": i["id"]} for i in inputs]
        edges += [{"source": "tool", "target": o["id"], "label": o["id"]} for o in outputs]
    return {
        "class": tool.get("class"),
        "label": tool.get("label"),
        "doc": tool.get("doc") if isinstance(tool.get("doc"), str) else None,
        "inputs": inputs,
        "outputs": outputs,
        "graph": {"nodes": nodes, "edges": edges},
    }


def describe(path: str, confinement: Confinement | None = None) -> dict[str, Any]:
    """Load and validate the document at ``path``; its :func:`interface`.
    ``confinement``: the document was uploaded to the server (see ``loading``)."""
    from twinengine.workflows.loading import load_document  # cwltool: imported on first use

    process = load_document(path, confinement)
    info = interface(process.tool)
    if confinement is not None:  # defaults name files by their place in the upload
        for port in info["inputs"]:
            for _, obj in file_objects(port.get("default")):
                for key in ("location", "path"):
                    if isinstance(obj.get(key), str) and not obj[key].startswith("_:"):
                        obj[key] = confinement.shown(obj[key])
    return info


def validation_errors(
    error: InvalidDocumentError, folder: str | None = None, hidden: tuple[Path, ...] = ()
) -> list[dict]:
    """``{message, line, column, file}`` items of a validation error; paths in ``folder``
    are named relative to it, other local paths (those in ``hidden`` too) left out."""
    items: list[dict[str, Any]] = []
    text = str(error.message)
    if folder:
        text = scrub(text, Path(folder), hidden)
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        match = _POSITION.match(line)
        if match and match.group("msg"):
            where = match.group("file")
            if folder and f"{Path(folder).name}/" in where:  # schema-salad's relative form
                where = where.split(f"{Path(folder).name}/", 1)[1]
            items.append(
                {
                    "message": match.group("msg"),
                    "file": where,
                    "line": int(match.group("line")),
                    "column": int(match.group("column")),
                }
            )
        elif items and raw.startswith(" "):
            items[-1]["message"] += " " + line
        else:
            items.append({"message": line, "file": None, "line": None, "column": None})
    return items or [{"message": str(error), "file": None, "line": None, "column": None}]

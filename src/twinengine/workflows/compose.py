"""The composer: a workflow drawn in the web UI (steps, ports, wires) written as CWL.

:func:`compose` takes the composer's JSON — workflow inputs, steps that each run a
palette item (a built-in template from ``workflows/templates/``, an AI tool from
``ai/cwl/`` as ``ai-train``, ``ai-register``, ``ai-promote`` …, or a registered
workflow), their wiring and literal parameters, and workflow outputs — checks it
(unknown tools and ports, unwired required inputs, wires from nowhere, cycles) with
messages naming the step and port, and writes a standalone CWL v1.2 Workflow: each
step's tool is embedded in the document (a registered workflow made of several files
travels in the archive beside it). The result is validated and registered like any
upload. :func:`palette` lists what a step can run.
"""

from __future__ import annotations

import io
import tarfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from twinengine.core import InvalidInputError
from twinengine.workflows.describe import describe

TEMPLATES = Path(__file__).parent / "templates"
AI_TOOLS = Path(__file__).parent.parent / "ai" / "cwl"  # train, register, predict … as ai-*
_HOISTED = ("$namespaces", "$schemas")


@lru_cache(maxsize=1)
def templates() -> tuple[dict[str, Any], ...]:
    """The built-in step templates with their interfaces (loaded once per process)."""
    items = []
    found = [(p, p.stem) for p in sorted(TEMPLATES.glob("*.cwl"))]
    found += [(p, f"ai-{p.stem}") for p in sorted(AI_TOOLS.glob("*.cwl"))]
    for path, name in found:
        info = describe(str(path))
        items.append(
            {
                "ref": f"template:{name}",
                "kind": "template",
                "name": name,
                "version": None,
                "label": info["label"],
                "class": info["class"],
                "doc": info["doc"],
                "inputs": info["inputs"],
                "outputs": info["outputs"],
                "path": str(path),
            }
        )
    return tuple(items)


def palette(registry: Any, projects: list[str] | None) -> list[dict[str, Any]]:
    """Templates, then the registered workflows the caller can see (newest version)."""
    items = [{k: v for k, v in t.items() if k != "path"} for t in templates()]
    seen: set[tuple[str, str]] = set()
    for wf in registry.list(projects=projects, limit=500)[0]:
        if (wf["project"], wf["name"]) in seen:
            continue
        seen.add((wf["project"], wf["name"]))
        items.append(
            {
                "ref": wf["id"],
                "kind": "workflow",
                "name": wf["name"],
                "version": wf["version"],
                "label": wf["label"],
                "class": wf["class"],
                "doc": wf["doc"],
                "inputs": wf["inputs"],
                "outputs": wf["outputs"],
            }
        )
    return items


def _tool(ref: str, registry: Any, project: str) -> dict[str, Any]:
    """``{inputs, outputs, class, main (Path), folder (Path | None)}`` of a palette ref."""
    if ref.startswith("template:"):
        for item in templates():
            if item["ref"] == ref:
                return {**item, "main": Path(item["path"]), "folder": None}
        names = ", ".join(t["name"] for t in templates())
        raise InvalidInputError(f"no template {ref[9:]!r}", hint=f"templates: {names}")
    try:
        row = registry.row(ref)
    except Exception:
        row = None
    if row is None or row["project"] != project:
        raise InvalidInputError(
            f"no workflow {ref!r} in project {project!r} to use as a step",
            hint="GET /api/v1/palette lists what a step can run",
        )
    public = registry.get(ref)
    folder = Path(row["folder"])
    files = [p for p in folder.rglob("*") if p.is_file()]
    return {**public, "main": folder / row["main"], "folder": folder if len(files) > 1 else None}


def _check_order(steps: list[dict[str, Any]]) -> None:
    """Refuse wiring loops (a step that needs its own output, through any path)."""
    needs = {
        s["id"]: {w["source"].split("/")[0] for w in s["in"].values() if "/" in (w["source"] or "")}
        for s in steps
    }
    done: set[str] = set()
    while len(done) < len(needs):
        ready = [s for s, deps in needs.items() if s not in done and deps <= done]
        if not ready:
            loop = sorted(set(needs) - done)
            raise InvalidInputError("the steps are wired in a loop: " + ", ".join(loop))
        done.update(ready)


def compose(spec: dict[str, Any], registry: Any, project: str) -> tuple[bytes, str]:
    """``(data, filename)`` of the CWL (or archive) for the composer ``spec``."""
    inputs = {i["id"]: i for i in spec.get("inputs", [])}
    steps = spec.get("steps", [])
    ids = [s["id"] for s in steps]
    clash = {i for i in ids if ids.count(i) > 1} | (set(ids) & set(inputs))
    if clash:
        raise InvalidInputError(f"these names are used twice: {', '.join(sorted(clash))}")
    tools = {s["id"]: _tool(s["run"], registry, project) for s in steps}
    port_types: dict[str, str] = {k: v.get("type", "string") for k, v in inputs.items()}
    for step_id, tool in tools.items():
        for out in tool["outputs"]:
            port_types[f"{step_id}/{out['id']}"] = out["type"]

    def source_ok(where: str, source: str) -> str:
        if source not in port_types:
            raise InvalidInputError(
                f"{where}: {source!r} is neither a workflow input nor a step output",
                hint="sources are INPUT or STEP/OUTPUT",
            )
        return source

    document: dict[str, Any] = {"cwlVersion": "v1.2", "class": "Workflow"}
    hoisted: dict[str, Any] = {}
    for key in ("label", "doc"):
        if spec.get(key):
            document[key] = spec[key]
    document["inputs"] = {
        k: {
            "type": v.get("type") or "string",
            **({"default": v["default"]} if v.get("default") is not None else {}),
        }
        for k, v in inputs.items()
    }
    document["outputs"] = {}
    document["steps"] = {}
    extra_files: dict[str, Path] = {}
    subworkflow = False
    for step in steps:
        tool, step_id = tools[step["id"]], step["id"]
        ports = {p["id"]: p for p in tool["inputs"]}
        wiring: dict[str, Any] = {}
        for port, wire in step.get("in", {}).items():
            if port not in ports:
                raise InvalidInputError(
                    f"step {step_id!r}: its tool has no input {port!r}",
                    hint="inputs: " + ", ".join(ports),
                )
            if wire.get("source"):
                wiring[port] = source_ok(f"step {step_id!r} input {port!r}", wire["source"])
            elif wire.get("default") is not None:
                wiring[port] = {"default": wire["default"]}
        unwired = [p for p, info in ports.items() if p not in wiring and not info["optional"]]
        if unwired:
            raise InvalidInputError(
                f"step {step_id!r}: input(s) {', '.join(unwired)} need a value",
                hint="connect them to a source or set a value",
            )
        if tool["folder"] is not None:
            run: Any = f"steps/{step_id}/{tool['main'].relative_to(tool['folder'])}"
            extra_files[f"steps/{step_id}"] = tool["folder"]
        else:
            run = yaml.safe_load(tool["main"].read_text(encoding="utf-8"))
            run.pop("cwlVersion", None)
            for key in _HOISTED:
                if key in run:
                    hoisted.setdefault(key, {}).update(run.pop(key))
        subworkflow = subworkflow or tool["class"] == "Workflow"
        document["steps"][step_id] = {
            "run": run,
            "in": wiring,
            "out": [o["id"] for o in tool["outputs"]],
        }
    _check_order(
        [
            {
                "id": sid,
                "in": {
                    p: {"source": w if isinstance(w, str) else None} for p, w in body["in"].items()
                },
            }
            for sid, body in document["steps"].items()
        ]
    )
    for out in spec.get("outputs", []):
        source = source_ok(f"output {out['id']!r}", out["source"])
        document["outputs"][out["id"]] = {"type": port_types[source], "outputSource": source}
    if subworkflow:
        document["requirements"] = {"SubworkflowFeatureRequirement": {}}
    document = {**hoisted, **document}
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True).encode()
    if not extra_files:
        return text, f"{spec['name']}.cwl"
    return _archive(text, extra_files), f"{spec['name']}.tar.gz"


def _archive(main: bytes, folders: dict[str, Path]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("main.cwl")
        info.size = len(main)
        tar.addfile(info, io.BytesIO(main))
        for prefix, folder in folders.items():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    tar.add(path, f"{prefix}/{path.relative_to(folder)}", recursive=False)
    return buffer.getvalue()

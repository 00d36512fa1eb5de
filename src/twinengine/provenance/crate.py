"""A run as a Workflow Run RO-Crate (Provenance Run Crate profile), written with ``rocrate``.

The crate holds the workflow (the main ``ComputationalWorkflow``) and each tool
(``SoftwareApplication`` with a ``HowToStep`` per step), the run's input and output
files that still exist with the content the run saw (checked by their SHA-256, so a
location recorded for an element never brings another file into the crate), one
``CreateAction`` for the run and one per step execution (times, status, the files each
used and produced), an ``OrganizeAction`` for TwinEngine orchestrating them, and the
run's PROV document (PROV-JSON and PROV-N) under ``metadata/provenance/``, as cwltool's
research objects do.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from twinengine import __version__
from twinengine.core.errors import InvalidInputError
from twinengine.provenance.graph import ProvGraph, regular_file_sha256

PROFILES = {
    "process": "https://w3id.org/ro/wfrun/process/0.5",
    "workflow": "https://w3id.org/ro/wfrun/workflow/0.5",
    "provenance": "https://w3id.org/ro/wfrun/provenance/0.5",
    "wroc": "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
}
_STATUS = {
    "succeeded": "http://schema.org/CompletedActionStatus",
    "failed": "http://schema.org/FailedActionStatus",
    "cancelled": "http://schema.org/FailedActionStatus",
}


def _local(location: str | None) -> str | None:
    if not location:
        return None
    path = unquote(urlsplit(location).path) if location.startswith("file://") else location
    return path.split("#", 1)[0]


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def write_crate(
    graph: ProvGraph, run: dict[str, Any], target: Path, prov_texts: dict[str, str]
) -> Path:
    """Write the crate of ``run`` to ``target`` (a folder, or a ``.zip`` file)."""
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    crate = ROCrate()
    crate.name = f"TwinEngine run {run['id']}"
    crate.root_dataset["conformsTo"] = [{"@id": uri} for uri in PROFILES.values()]
    for uri in PROFILES.values():
        crate.add(ContextEntity(crate, uri, properties={"@type": "CreativeWork"}))
    workflow_path = _local(run.get("workflow"))
    if not workflow_path or not os.path.isfile(workflow_path):
        raise InvalidInputError(
            f"the workflow of run {run['id']} ({run.get('workflow')}) is no longer on disk",
            hint="an RO-Crate includes the workflow; the other formats do not need it",
        )
    workflow = crate.add_workflow(workflow_path, os.path.basename(workflow_path), main=True)
    engine = crate.add(
        ContextEntity(
            crate,
            "https://twinengine.org",
            properties={
                "@type": "SoftwareApplication",
                "name": "TwinEngine",
                "version": __version__,
            },
        )
    )
    files: dict[str, Any] = {}
    # where the run left each file (final outputs), else where it was first seen
    places: dict[str, list[str]] = {}
    for rel in graph.relations:
        where = rel.attributes.get("prov:location")
        if isinstance(where, str):
            places.setdefault(rel.subject, []).append(where)
    for element in graph.elements.values():
        where = element.attributes.get("prov:location")
        if isinstance(where, str):
            places.setdefault(element.id, []).append(where)

    def file_entity(element_id: str) -> Any:
        if element_id in files:
            return files[element_id]
        digest = element_id.removeprefix("sha256:")
        path = next(  # only a file that still has the content the element names
            (p for p in places.get(element_id, []) if regular_file_sha256(p) == digest), None
        )
        entity = None
        if path is not None:
            name = f"data/{element_id.removeprefix('sha256:')[:12]}-{os.path.basename(path)}"
            entity = crate.add_file(
                path, name, properties={"sha256": element_id.removeprefix("sha256:")}
            )
        files[element_id] = entity
        return entity

    used: dict[str, list[str]] = {}
    generated: dict[str, list[str]] = {}
    for rel in graph.relations:
        if rel.kind == "used" and rel.object.startswith("sha256:"):
            used.setdefault(rel.subject, []).append(rel.object)
        elif rel.kind == "wasGeneratedBy" and rel.subject.startswith("sha256:"):
            generated.setdefault(rel.object, []).append(rel.subject)

    def action(activity_id: str, instrument: Any, name: str | None) -> Any:
        element = graph.elements[activity_id]
        inputs = [e for e in (file_entity(i) for i in used.get(activity_id, [])) if e]
        outputs = [e for e in (file_entity(o) for o in generated.get(activity_id, [])) if e]
        state = element.attributes.get("twin:state")
        props = {
            "name": name or element.label or activity_id,
            "startTime": _when(element.start_time),
            "endTime": _when(element.end_time),
            "actionStatus": {
                "@id": _STATUS.get(str(state), "http://schema.org/ActiveActionStatus")
            },
        }
        return crate.add_action(
            instrument,
            identifier=f"#{activity_id.replace('/', '-').replace(':', '-')}",
            object=inputs,
            result=outputs,
            properties={k: v for k, v in props.items() if v is not None},
        )

    run_activity = f"twin:run/{run['id']}"
    for rel in graph.relations:  # the run's results: its outputs, attributed to the user
        if rel.kind == "wasAttributedTo" and rel.subject.startswith("sha256:"):
            generated.setdefault(run_activity, []).append(rel.subject)
    run_action = action(run_activity, workflow, run.get("name"))
    step_actions = []
    tools: dict[str, Any] = {}
    for element in graph.elements.values():
        if element.attributes.get("prov:type") != "twin:Step":
            continue
        step_name = (element.label or "step").split("[", 1)[0].split("/", 1)[-1]
        tool = tools.get(step_name)
        if tool is None:
            tool = tools[step_name] = crate.add(
                ContextEntity(
                    crate,
                    f"#{step_name}-tool",
                    properties={"@type": "SoftwareApplication", "name": step_name},
                )
            )
            crate.add(
                ContextEntity(
                    crate,
                    f"#{step_name}",
                    properties={
                        "@type": "HowToStep",
                        "name": step_name,
                        "workExample": {"@id": tool.id},
                    },
                )
            )
        step_actions.append(action(element.id, tool, element.label))
    crate.add(
        ContextEntity(
            crate,
            f"#organize-{run['id']}",
            properties={
                "@type": "OrganizeAction",
                "name": f"TwinEngine orchestration of run {run['id']}",
                "agent": {"@id": engine.id},
                "instrument": {"@id": engine.id},
                "result": [{"@id": run_action.id}] + [{"@id": a.id} for a in step_actions],
            },
        )
    )
    with tempfile.TemporaryDirectory(prefix="twin-crate-") as tmp:
        for name, text in prov_texts.items():
            path = Path(tmp) / name
            path.write_text(text, encoding="utf-8")
            crate.add_file(
                path,
                f"metadata/provenance/{name}",
                properties={
                    "encodingFormat": _PROV_TYPES.get(path.suffix, "text/plain"),
                    "about": {"@id": run_action.id},
                },
            )
        if target.suffix == ".zip":
            crate.write_zip(target)
        else:
            crate.write(target)
    return target


_PROV_TYPES = {".json": "application/json", ".provn": "text/provenance-notation"}

"""The provenance functions the CLI calls (and the REST API will); see the package doc.


- :func:`capture` — the PROV document of a run from its records (runs record one
  automatically when they end; this makes it again).
- :class:`ProvStore` — save/load documents, ``lineage(target, direction, depth)``,
  ``runs_using(target)``, ``resolve(target)``.
- :func:`export_run` / :func:`serialize` — PROV-JSON, PROV-N, PROV-XML, Turtle.
- :func:`import_file` — a PROV file from any producer, stored in one transaction.
- :func:`diff_runs` — which inputs, parameters and tool versions differ between runs.
- :func:`activity` (online) and :func:`record_document` (batch) — tracking from plain
  Python code that is not a CWL tool.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from twinengine.core import NotFoundError, new_id
from twinengine.provenance.capture import record_run
from twinengine.provenance.convert import FORMATS, from_prov, read_document, serialize
from twinengine.provenance.graph import ProvGraph, file_sha256, value_id
from twinengine.provenance.rows import graph_rows
from twinengine.provenance.store import DIRECTIONS, ProvStore

__all__ = [
    "DIRECTIONS",
    "FORMATS",
    "ProvGraph",
    "ProvStore",
    "activity",
    "capture",
    "diff_runs",
    "export_crate",
    "export_run",
    "import_file",
    "record_document",
    "run_id_of",
    "serialize",
]


def capture(run_id: str, store: ProvStore | None = None) -> str:
    """(Re)make the PROV document of a stored run; returns the document id."""
    store = store or ProvStore()
    document_id = record_run(store.writer(), run_id_of(run_id, store))
    assert document_id is not None  # run_id_of raised for an unknown run
    return document_id


def export_run(run_id: str, fmt: str = "json", store: ProvStore | None = None) -> str:
    """The PROV document of a run, serialised in ``fmt`` (json, provn, xml, ttl)."""
    store = store or ProvStore()
    return serialize(store.load(store.document_of_run(run_id_of(run_id, store))), fmt)


def export_crate(
    run_id: str,
    target: str | Path,
    store: ProvStore | None = None,
    rewrite: Callable[[Any], Any] | None = None,
) -> Path:
    """Write a run as a Workflow Run RO-Crate (a folder, or a ``.zip`` file); ``rewrite``
    changes the attribute values of the PROV texts in it (a server hides its paths)."""
    from twinengine.provenance.crate import write_crate
    from twinengine.workflows import RunStore

    store = store or ProvStore()
    run = RunStore(store.db).get(run_id)
    graph = store.load(store.document_of_run(run["id"]))
    shown = graph.rewritten(rewrite) if rewrite is not None else graph
    texts = {
        "primary.prov.json": serialize(shown, "json"),
        "primary.prov.provn": serialize(shown, "provn"),
    }
    return write_crate(graph, run, Path(target), texts)


def import_file(path: str | Path, fmt: str | None = None, store: ProvStore | None = None) -> str:
    """Store a PROV file from any producer (one transaction); returns the document id."""
    path = Path(path)
    graph = read_document(path, fmt)
    return (store or ProvStore()).save(graph, name=path.name, origin="import", check_kinds=False)


def record_document(document: Any, name: str = "document", store: ProvStore | None = None) -> str:
    """Batch API: store a whole PROV document — a ``prov.model.ProvDocument``, a
    PROV-JSON text or dict, or a :class:`ProvGraph`; returns the document id."""
    from prov.model import ProvDocument

    if isinstance(document, ProvGraph):
        graph = document
    elif isinstance(document, ProvDocument):
        graph = from_prov(document)
    else:
        text = document if isinstance(document, str) else json.dumps(document)
        graph = from_prov(ProvDocument.deserialize(content=text, format="json"))
    ours = isinstance(document, ProvGraph)
    return (store or ProvStore()).save(graph, name=name, origin="client", check_kinds=ours)


def run_id_of(run_id: str, store: ProvStore) -> str:
    from twinengine.workflows import RunStore

    return RunStore(store.db).get(run_id)["id"]  # accepts a unique prefix


# -- differences between runs ---------------------------------------------------------
def _run_profile(store: ProvStore, run_id: str) -> dict[str, dict[str, str]]:
    graph = store.load(store.document_of_run(run_id))
    run = f"twin:run/{run_id}"
    step_names = {  # "wf.cwl/align[3]" -> "align": scatter jobs and workflow names aside
        e.id: (e.label or "").split("[", 1)[0].split("/", 1)[-1]
        for e in graph.elements.values()
        if e.kind == "activity" and e.id != run
    }
    inputs: dict[str, str] = {}
    parameters: dict[str, str] = {}
    tools: dict[str, str] = {}
    for rel in graph.relations:
        if rel.kind == "used" and rel.subject == run:
            role = str(rel.attributes.get("prov:role", "")).removeprefix("twin:input/")
            element = graph.elements.get(rel.object)
            if element is None:
                continue
            if "prov:value" in element.attributes:
                shown = json.dumps(element.attributes["prov:value"])
                parameters.setdefault(role, shown)
            else:
                label = f"{element.label} ({rel.object})"
                inputs[role] = label if role not in inputs else f"{inputs[role]}, {label}"
        elif rel.kind == "wasAssociatedWith" and "prov:plan" in rel.attributes:
            name = "workflow" if rel.subject == run else step_names.get(rel.subject, rel.subject)
            tools[name] = str(rel.attributes["prov:plan"])
    return {"inputs": inputs, "parameters": parameters, "tools": tools}


def diff_runs(run_a: str, run_b: str, store: ProvStore | None = None) -> dict[str, list[tuple]]:
    """``{"inputs"|"parameters"|"tools": [(name, in A, in B), …]}`` — only what differs."""
    store = store or ProvStore()
    a = _run_profile(store, run_id_of(run_a, store))
    b = _run_profile(store, run_id_of(run_b, store))
    result: dict[str, list[tuple]] = {}
    for section in ("inputs", "parameters", "tools"):
        names = sorted(set(a[section]) | set(b[section]))
        result[section] = [
            (n, a[section].get(n), b[section].get(n))
            for n in names
            if a[section].get(n) != b[section].get(n)
        ]
    return result


# -- tracking from plain Python -------------------------------------------------------
class TrackedActivity:
    """An activity recorded as it happens: each ``used``/``generated`` is stored at once."""

    def __init__(self, name: str, store: ProvStore, attributes: dict[str, Any]) -> None:
        self.store = store
        self.id = f"twin:activity/{new_id()}"
        self.document_id = new_id()
        graph = ProvGraph()
        user = f"twin:agent/user/{getpass.getuser()}@{socket.gethostname()}"
        graph.agent(user, getpass.getuser(), prov_type="prov:Person")
        graph.activity(self.id, name, dt.datetime.now(dt.UTC), **attributes)
        graph.relate("wasAssociatedWith", self.id, user)
        self.user = user
        self._used: list[str] = []
        self._write(graph, new_document=name)

    def _write(self, graph: ProvGraph, new_document: str | None = None) -> None:
        rows = graph_rows(graph, self.document_id, name=new_document or "", origin="client")
        if new_document is None:
            rows["prov_documents"] = []
        self.store.writer().insert_rows(rows, {"prov_elements", "prov_members"})

    def _entity(self, graph: ProvGraph, thing: Any) -> str:
        if isinstance(thing, (str, os.PathLike)) and os.path.isfile(thing):
            path = os.path.abspath(thing)
            return graph.entity(
                f"sha256:{file_sha256(path)}",
                os.path.basename(path),
                prov_location=path,
                twin_size=os.path.getsize(path),
            )
        literal = thing if isinstance(thing, (str, int, float, bool)) else json.dumps(thing)
        return graph.entity(value_id(thing), None, prov_value=literal)

    def used(self, thing: Any, role: str | None = None) -> str:
        """Record that the activity used a file (by content) or a value; returns its id."""
        graph = ProvGraph()
        entity = self._entity(graph, thing)
        graph.relate("used", self.id, entity, prov_role=role and f"twin:input/{role}")
        self._write(graph)
        self._used.append(entity)
        return entity

    def generated(self, path: str | os.PathLike[str], role: str | None = None) -> str:
        """Record that the activity wrote ``path``; it derives from everything used."""
        if not os.path.isfile(path):
            raise NotFoundError(f"{path} is not a file: record what exists once written")
        graph = ProvGraph()
        entity = self._entity(graph, path)
        graph.relate("wasGeneratedBy", entity, self.id, prov_role=role and f"twin:output/{role}")
        graph.relate("wasAttributedTo", entity, self.user)
        for source in dict.fromkeys(self._used):
            if source != entity:
                graph.relate("wasDerivedFrom", entity, source, prov_activity=self.id)
        self._write(graph)
        return entity

    def end(self) -> None:
        from sqlalchemy import update

        from twinengine.core.models import prov_elements

        with self.store.db.engine.begin() as conn:
            conn.execute(
                update(prov_elements)
                .where(prov_elements.c.id == self.id, prov_elements.c.project == "")
                .values(end_time=dt.datetime.now(dt.UTC))
            )


@contextlib.contextmanager
def activity(
    name: str, store: ProvStore | None = None, **attributes: Any
) -> Iterator[TrackedActivity]:
    """Track a piece of plain Python work as a PROV activity, online::

    with activity("train") as act:
        act.used("data/train.nc")
        act.used({"lr": 0.01}, role="hyperparameters")
        ...
        act.generated("model.onnx")
    """
    act = TrackedActivity(name, store or ProvStore(), attributes)
    try:
        yield act
    finally:
        act.end()

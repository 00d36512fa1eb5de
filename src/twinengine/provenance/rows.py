"""A PROV graph as table rows, and back: the one mapping both writers and the reader use.

Element ids are scoped per project: an element is shared by the documents of one project
(the primary key is the project and the element id; ``""`` for documents of no project),
so it is inserted "if absent"; a document lists its elements in ``prov_members`` and owns
its relations. :func:`graph_rows` is used by the SQLAlchemy store and by the ``sqlite3``
writer of run records, :func:`graph_from_rows` by every reader.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from twinengine.provenance.graph import Element, ProvGraph, Relation


def graph_rows(
    graph: ProvGraph,
    document_id: str,
    *,
    name: str,
    origin: str,
    run_id: str | None = None,
    attributes: dict[str, Any] | None = None,
    project: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``{table: rows}`` for one document."""
    return {
        "prov_documents": [
            {
                "id": document_id,
                "run_id": run_id,
                "name": name,
                "origin": origin,
                "created_at": dt.datetime.now(dt.UTC),
                "namespaces": graph.namespaces,
                "attributes": attributes or {},
                "project": project,
            }
        ],
        "prov_elements": [
            {
                "project": project or "",
                "id": e.id,
                "kind": e.kind,
                "label": e.label,
                "start_time": e.start_time,
                "end_time": e.end_time,
                "attributes": e.attributes,
                "document_id": document_id,
            }
            for e in graph.elements.values()
        ],
        "prov_members": [
            {"document_id": document_id, "element_id": element, "bundle": bundle}
            for element, bundle in sorted(graph.members)
        ],
        "prov_relations": [
            {
                "document_id": document_id,
                "bundle": r.bundle,
                "kind": r.kind,
                "subject": r.subject,
                "object": r.object,
                "attributes": r.attributes,
            }
            for r in graph.relations
        ],
    }


def _json(value: Any) -> dict[str, Any]:
    """A JSON column as a dict: SQLAlchemy decodes it, a plain text() query does not."""
    if isinstance(value, str):
        value = {} if value in ("{}", "null") else json.loads(value)
    return dict(value or {})


def element_from_row(row: Any) -> Element:
    return Element(
        row["id"],
        row["kind"],
        row["label"],
        _json(row["attributes"]),
        _utc(row["start_time"]),
        _utc(row["end_time"]),
    )


def relation_from_row(row: Any) -> Relation:
    return Relation(
        row["kind"], row["subject"], row["object"], _json(row["attributes"]), row["bundle"]
    )


def graph_from_rows(
    namespaces: dict[str, str] | None,
    elements: list[Any],
    members: list[Any],
    relations: list[Any],
) -> ProvGraph:
    graph = ProvGraph()
    graph.namespaces.update(namespaces or {})
    for row in elements:
        graph.elements[row["id"]] = element_from_row(row)
    graph.members = {(m["element_id"], m["bundle"] or "") for m in members}
    graph.relations = [relation_from_row(r) for r in relations]
    return graph


def _utc(value: Any) -> dt.datetime | None:
    """SQLite gives naive datetimes (stored as UTC), PostgreSQL aware ones."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)

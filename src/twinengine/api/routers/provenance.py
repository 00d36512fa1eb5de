"""Routes of provenance: PROV documents (batch), elements and relations (online),
lineage, and each run's document in every export format.

Element ids are scoped per project: a document lists the elements of its own project,
an element of another project answers exactly like a missing one, and a client document
may name a run's elements (``twin:run/<run>…``) only for runs of its own project — ids
are compared as IRIs, whatever prefix (or default namespace, or full IRI) spells them.
Document ids are one namespace: an id another project uses is refused with a 409 that
says nothing about it. What is shown has its server paths rewritten
(:class:`~twinengine.api.paths.ServerPaths`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse
from sqlalchemy import select

from twinengine.api import schemas
from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.limits import limited_by
from twinengine.api.provscope import (
    check_doc_id,
    check_run_ids,
    doc_exists,
    document,
    online_graph,
    open_store,
    save_document,
    taken,
)
from twinengine.api.routers.runs import visible_run
from twinengine.core import InvalidInputError, NotFoundError, StateError
from twinengine.core.models import (
    prov_elements,
    prov_members,
    prov_relations,
)
from twinengine.provenance import (
    FORMATS,
    ProvGraph,
    export_crate,
    parse_document,
    run_ids,
    serialize,
)
from twinengine.provenance.draw import to_svg
from twinengine.provenance.graph import RELATIONS, Element, Relation, check_identifier

router = APIRouter(prefix="/api/v1", tags=["provenance"], responses=ERROR_RESPONSES)
_MEDIA = {
    "json": "application/json",
    "provn": "text/provenance-notation",
    "xml": "application/xml",
    "ttl": "text/turtle",
}
TextFormat = Annotated[str, Query(pattern="^(json|provn|xml|ttl)$")]
Project = Annotated[str | None, Query(max_length=64)]


def graph_json(graph: ProvGraph) -> dict[str, Any]:
    """Nodes and edges of a PROV graph, for drawing."""
    nodes = [
        {"id": e.id, "kind": e.kind, "label": e.label or e.id} for e in graph.elements.values()
    ]
    edges = [{"kind": r.kind, "source": r.subject, "target": r.object} for r in graph.relations]
    return {"nodes": nodes, "edges": edges}


@router.get("/prov/documents", response_model=schemas.Items)
def list_documents(
    project: Project = None,
    run: Annotated[str | None, Query(max_length=64)] = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """PROV documents of the caller's projects (runs' and imported ones)."""
    with open_store(ctx) as store:
        store.ensure_captured()
        docs = store.documents(run_id=run, projects=ctx.visible(who, project))
        keys = ("id", "name", "origin", "run_id", "project", "created_at")
        return {"items": [{k: d.get(k) for k in keys} for d in docs]}


@router.put("/prov/documents/{doc_id}", status_code=201, response_model=schemas.ProvDocument)
@limited_by("max_prov_mb")
async def put_document(
    doc_id: str,
    request: Request,
    response: Response,
    format: TextFormat = "json",
    project: Project = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Store a whole PROV document (batch) under ``doc_id``, replacing an earlier one of
    the caller's (at most ``TWIN_MAX_PROV_MB``)."""
    check_doc_id(doc_id)
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInputError("a PROV document must be UTF-8 text") from None
    saved = await run_in_threadpool(_store_document, ctx, who, doc_id, text, format, project)
    response.status_code = 200 if saved["replaced"] else 201
    return {"id": doc_id, "name": doc_id, "origin": "client", "project": saved["project"]}


def _store_document(
    ctx: ServerContext, who: Principal, doc_id: str, text: str, fmt: str, project: str | None
) -> dict[str, Any]:
    """Parse and store a document: ``{"replaced", "project"}``."""
    try:
        old: dict | None = document(ctx, who, doc_id, "editor")
    except NotFoundError:
        if doc_exists(ctx, doc_id):
            raise taken(doc_id) from None
        old = None
    if old is not None and old["origin"] == "run":
        raise StateError(f"document {doc_id} is a run's; it cannot be replaced")
    default = old["scope"] if old is not None and old["scope"] else None
    project = ctx.project_for(who, project or default, "editor")
    graph = parse_document(text, fmt, f"document {doc_id}")
    with open_store(ctx) as store:
        store.ensure_captured()  # a run's own elements are stored before anyone names them
    check_run_ids(ctx, run_ids(graph), project)
    if old is not None:
        with open_store(ctx) as store:
            store.delete(doc_id)
    save_document(ctx, graph, doc_id, project)
    return {"replaced": old is not None, "project": project}


@router.get("/prov/documents/{doc_id}")
def get_document(
    doc_id: str,
    format: TextFormat = "json",
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> PlainTextResponse:
    """A stored PROV document in PROV-JSON, PROV-N, PROV-XML or Turtle."""
    document(ctx, who, doc_id)
    with open_store(ctx) as store:
        graph = store.load(doc_id).rewritten(ctx.paths.value)
    return PlainTextResponse(serialize(graph, format), media_type=_MEDIA[format])


@router.delete("/prov/documents/{doc_id}", status_code=204)
def delete_document(
    doc_id: str, who: Principal = Depends(needs("run")), ctx: ServerContext = Depends(context)
) -> Response:
    """Delete a document (its project's elements stay)."""
    document(ctx, who, doc_id, "editor")
    with open_store(ctx) as store:
        store.delete(doc_id)
    return Response(status_code=204)


@router.delete("/prov/documents", status_code=204)
def delete_documents(
    ids: Annotated[str, Query(min_length=1, max_length=10000, description="a,b,c")],
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> Response:
    """Delete several documents at once; nothing is deleted if one is not yours."""
    wanted = [i for i in ids.split(",") if i]
    for doc_id in wanted:
        document(ctx, who, doc_id, "editor")
    for doc_id in wanted:
        with open_store(ctx) as store:
            store.delete(doc_id)
    return Response(status_code=204)


def _ensure_document(ctx: ServerContext, who: Principal, doc_id: str, project: str | None) -> str:
    """The project of document ``doc_id``, made (empty, in ``project``) if new."""
    try:
        doc = document(ctx, who, doc_id, "editor")
    except NotFoundError:
        check_doc_id(doc_id)
        if doc_exists(ctx, doc_id):
            raise taken(doc_id) from None
        scope = ctx.project_for(who, project, "editor")
        save_document(ctx, ProvGraph(), doc_id, scope)
        return scope
    if doc["origin"] == "run":
        raise StateError(f"document {doc_id} is a run's; add to a document of your own")
    return doc["scope"]


@router.post("/prov/documents/{doc_id}/elements", status_code=201, response_model=schemas.Element)
def add_element(
    doc_id: str,
    body: schemas.ElementIn,
    project: Project = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Add an entity, activity or agent to a document (created if new): online tracking."""
    check_identifier(body.id, "element id")
    scope = _ensure_document(ctx, who, doc_id, project)
    given = Element(body.id, body.kind, body.label, body.attributes)
    graph = online_graph(ctx, doc_id, elements=[given])
    check_run_ids(ctx, run_ids(graph), scope)
    (element,) = graph.elements.values()
    row = {
        "project": scope,
        "id": element.id,
        "kind": body.kind,
        "label": body.label,
        "attributes": element.attributes,
        "start_time": body.start_time,
        "end_time": body.end_time,
        "document_id": doc_id,
    }
    member = {"document_id": doc_id, "element_id": element.id, "bundle": ""}
    with open_store(ctx) as store:
        store.writer().insert_rows(
            {"prov_elements": [row], "prov_members": [member]}, {"prov_elements", "prov_members"}
        )
    return {k: row[k] for k in ("id", "kind", "label", "attributes")}


@router.get("/prov/documents/{doc_id}/elements", response_model=schemas.Items)
def list_elements(
    doc_id: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    doc = document(ctx, who, doc_id)
    query = (
        select(prov_elements)
        .join(prov_members, prov_members.c.element_id == prov_elements.c.id)
        .where(prov_members.c.document_id == doc_id, prov_elements.c.project == doc["scope"])
        .order_by(prov_elements.c.id)
    )
    with ctx.db.engine.connect() as conn:
        return {"items": [_element(ctx, dict(r._mapping)) for r in conn.execute(query)]}


def _element(ctx: ServerContext, row: dict[str, Any]) -> dict[str, Any]:
    item = {k: ctx.paths.value(row.get(k)) for k in ("id", "kind", "label", "attributes")}
    for key in ("start_time", "end_time"):
        value = row.get(key)
        item[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return item


@router.get("/prov/elements/{element_id:path}", response_model=schemas.Element)
def get_element(
    element_id: str,
    project: Project = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """One element of one of the caller's projects (``project`` names which, when the id
    is in several of them)."""
    missing = NotFoundError(f"no PROV element {element_id!r}")
    projects = ctx.visible(who, project) if project else who.visible_projects()
    query = select(prov_elements).where(prov_elements.c.id == element_id)
    if projects is not None:
        query = query.where(prov_elements.c.project.in_(projects))
    with ctx.db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query.order_by(prov_elements.c.project))]
    if not rows:
        raise missing
    if len(rows) > 1:
        names = ", ".join(r["project"] or "(none)" for r in rows)
        raise InvalidInputError(
            f"PROV element {element_id!r} is in several of your projects: {names}",
            hint="name one with ?project=NAME",
        )
    return _element(ctx, rows[0])


@router.post("/prov/documents/{doc_id}/relations", status_code=201, response_model=schemas.Relation)
def add_relation(
    doc_id: str,
    body: schemas.RelationIn,
    project: Project = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Add a relation (used, wasGeneratedBy, …) between two elements of the document."""
    if body.kind not in RELATIONS:
        raise InvalidInputError(
            f"unknown PROV relation {body.kind!r}", hint="one of: " + ", ".join(sorted(RELATIONS))
        )
    check_identifier(body.subject, "subject")
    check_identifier(body.object, "object")
    scope = _ensure_document(ctx, who, doc_id, project)
    given = Relation(body.kind, body.subject, body.object, body.attributes)
    graph = online_graph(ctx, doc_id, relations=[given])
    check_run_ids(ctx, run_ids(graph), scope)
    (relation,) = graph.relations
    row = {
        "document_id": doc_id,
        "bundle": None,
        "kind": body.kind,
        "subject": relation.subject,
        "object": relation.object,
        "attributes": relation.attributes,
    }
    with open_store(ctx) as store:
        store.writer().insert_rows({"prov_relations": [row]}, set())
    return {k: row[k] for k in ("kind", "subject", "object", "attributes")}


@router.get("/prov/documents/{doc_id}/relations", response_model=schemas.Items)
def list_relations(
    doc_id: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    document(ctx, who, doc_id)
    query = select(prov_relations).where(prov_relations.c.document_id == doc_id)
    keys = ("kind", "subject", "object", "attributes", "bundle")
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(query.order_by(prov_relations.c.id))
        return {"items": [{k: ctx.paths.value(r._mapping[k]) for k in keys} for r in rows]}


@router.get("/prov/lineage", response_model=schemas.ProvGraphOut)
def lineage(
    target: Annotated[str, Query(min_length=1, max_length=500)],
    direction: Annotated[str, Query(pattern="^(up|down|both)$")] = "up",
    depth: Annotated[int | None, Query(ge=0, le=1000)] = None,
    project: Project = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """What ``target`` (an element id, ``sha256:…`` or a bare SHA-256) came from or fed,
    through the documents of ``project`` (default: all the caller's projects)."""
    projects = ctx.visible(who, project) if project else who.visible_projects()
    with open_store(ctx) as store:
        graph = store.lineage(target, direction, depth, projects=projects, files=False)
    return graph_json(graph.rewritten(ctx.paths.value))


@router.get("/runs/{run_id}/prov")
def run_provenance(
    run_id: str,
    format: Annotated[str, Query(pattern="^(json|provn|xml|ttl|rocrate|svg|graph)$")] = "json",
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> Response:
    """The run's PROV document: a text format, an RO-Crate zip, an SVG or graph JSON."""
    run = visible_run(ctx, who, run_id)
    if run["state"] in ("queued", "running"):
        raise StateError(
            f"run {run['id']} is {run['state']}; its provenance is recorded at the end"
        )
    with open_store(ctx) as store:
        if format == "rocrate":
            with tempfile.TemporaryDirectory(prefix="twin-crate-") as tmp:
                target = Path(tmp) / f"{run['id']}.crate.zip"
                export_crate(run["id"], target, store, rewrite=ctx.paths.value)
                data = target.read_bytes()
            return Response(
                data,
                media_type="application/zip",
                headers={"Content-Disposition": f'attachment; filename="{run["id"]}.crate.zip"'},
            )
        graph = store.load(store.document_of_run(run["id"])).rewritten(ctx.paths.value)
    if format in FORMATS:
        return PlainTextResponse(serialize(graph, format), media_type=_MEDIA[format])
    if format == "svg":
        svg = to_svg(graph)  # labels are the users': never scripts of this site
        return Response(
            svg, media_type="image/svg+xml", headers={"Content-Security-Policy": "sandbox"}
        )
    return Response(json.dumps(graph_json(graph), default=str), media_type="application/json")

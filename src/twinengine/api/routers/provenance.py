"""Routes of provenance: PROV documents (batch), elements and relations (online),
lineage, and each run's document in every export format."""

from __future__ import annotations

import datetime as dt
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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
from twinengine.api.routers.runs import visible_run
from twinengine.core import InvalidInputError, NotFoundError, PayloadTooLargeError, StateError
from twinengine.core.models import prov_documents, prov_elements, prov_members, prov_relations
from twinengine.provenance import FORMATS, ProvStore, read_document, serialize
from twinengine.provenance.graph import RELATIONS, ProvGraph, check_identifier

router = APIRouter(prefix="/api/v1", tags=["provenance"], responses=ERROR_RESPONSES)
_DOC_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
_MEDIA = {
    "json": "application/json",
    "provn": "text/provenance-notation",
    "xml": "application/xml",
    "ttl": "text/turtle",
}
TextFormat = Annotated[str, Query(pattern="^(json|provn|xml|ttl)$")]


@contextmanager
def _store(ctx: ServerContext) -> Iterator[ProvStore]:
    """A ProvStore for one request (its SQLite writer belongs to the request's thread)."""
    store = ProvStore(ctx.db)
    try:
        yield store
    finally:
        store.close()


def _document(ctx: ServerContext, who: Principal, doc_id: str, need: str = "viewer") -> dict:
    with ctx.db.engine.connect() as conn:
        row = conn.execute(select(prov_documents).where(prov_documents.c.id == doc_id)).first()
    if row is None:
        raise NotFoundError(f"no PROV document {doc_id!r}")
    doc = dict(row._mapping)
    project = doc.get("project")
    if doc.get("run_id"):
        try:
            project = ctx.runs.get(doc["run_id"]).get("project")
        except NotFoundError:
            project = doc.get("project")
    ctx.owned(who, project, need)
    return doc


def graph_json(graph: ProvGraph) -> dict[str, Any]:
    """Nodes and edges of a PROV graph, for drawing."""
    nodes = [
        {"id": e.id, "kind": e.kind, "label": e.label or e.id} for e in graph.elements.values()
    ]
    edges = [{"kind": r.kind, "source": r.subject, "target": r.object} for r in graph.relations]
    return {"nodes": nodes, "edges": edges}


@router.get("/prov/documents", response_model=schemas.Items)
def list_documents(
    project: Annotated[str | None, Query(max_length=64)] = None,
    run: Annotated[str | None, Query(max_length=64)] = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """PROV documents of the caller's projects (runs' and imported ones)."""
    with _store(ctx) as store:
        store.ensure_captured()
        docs = store.documents(run_id=run, projects=ctx.visible(who, project))
        keys = ("id", "name", "origin", "run_id", "project", "created_at")
        return {"items": [{k: d.get(k) for k in keys} for d in docs]}


@router.put("/prov/documents/{doc_id}", status_code=201, response_model=schemas.ProvDocument)
async def put_document(
    doc_id: str,
    request: Request,
    response: Response,
    format: TextFormat = "json",
    project: Annotated[str | None, Query(max_length=64)] = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Store a whole PROV document (batch) under ``doc_id``, replacing an earlier one."""
    if not _DOC_ID.match(doc_id):
        raise InvalidInputError("a document id is 1-32 letters, digits, '.', '_' or '-'")
    body = await request.body()
    if len(body) > ctx.settings.max_upload_mb * 1024 * 1024:
        raise PayloadTooLargeError(f"the document is larger than {ctx.settings.max_upload_mb} MB")
    replaced = await run_in_threadpool(_store_document, ctx, who, doc_id, body, format, project)
    response.status_code = 200 if replaced else 201
    return {"id": doc_id, "name": doc_id, "origin": "client", "project": project or "default"}


def _store_document(
    ctx: ServerContext, who: Principal, doc_id: str, body: bytes, fmt: str, project: str | None
) -> bool:
    """Parse and store a document; whether it replaced one."""
    project = ctx.project_for(who, project, "editor")
    try:
        old = _document(ctx, who, doc_id, "editor")
    except NotFoundError:
        old = None
    if old is not None and old["origin"] == "run":
        raise StateError(f"document {doc_id} is a run's; it cannot be replaced")
    with tempfile.TemporaryDirectory(dir=ctx.settings.home) as tmp:
        path = Path(tmp) / f"document.{fmt}"
        path.write_bytes(body)
        try:
            graph = read_document(path, fmt)
        except Exception as exc:  # prov's parsers raise many kinds
            raise InvalidInputError(f"not a PROV-{fmt.upper()} document: {exc}") from None
    with _store(ctx) as store:
        if old is not None:
            store.delete(doc_id)
        store.save(
            graph,
            name=doc_id,
            origin="client",
            check_kinds=False,
            project=project,
            document_id=doc_id,
        )
    return old is not None


@router.get("/prov/documents/{doc_id}")
def get_document(
    doc_id: str,
    format: TextFormat = "json",
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> PlainTextResponse:
    """A stored PROV document in PROV-JSON, PROV-N, PROV-XML or Turtle."""
    _document(ctx, who, doc_id)
    with _store(ctx) as store:
        text = serialize(store.load(doc_id), format)
    return PlainTextResponse(text, media_type=_MEDIA[format])


@router.delete("/prov/documents/{doc_id}", status_code=204)
def delete_document(
    doc_id: str, who: Principal = Depends(needs("run")), ctx: ServerContext = Depends(context)
) -> Response:
    """Delete a document (its shared elements stay)."""
    _document(ctx, who, doc_id, "editor")
    with _store(ctx) as store:
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
        _document(ctx, who, doc_id, "editor")
    for doc_id in wanted:
        with _store(ctx) as store:
            store.delete(doc_id)
    return Response(status_code=204)


def _ensure_document(ctx: ServerContext, who: Principal, doc_id: str, project: str | None) -> None:
    try:
        _document(ctx, who, doc_id, "editor")
    except NotFoundError:
        if not _DOC_ID.match(doc_id):
            raise InvalidInputError(
                "a document id is 1-32 letters, digits, '.', '_' or '-'"
            ) from None
        project = ctx.project_for(who, project, "editor")
        with _store(ctx) as store:
            store.save(
                ProvGraph(), name=doc_id, origin="client", project=project, document_id=doc_id
            )


@router.post("/prov/documents/{doc_id}/elements", status_code=201, response_model=schemas.Element)
def add_element(
    doc_id: str,
    body: schemas.ElementIn,
    project: Annotated[str | None, Query(max_length=64)] = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Add an entity, activity or agent to a document (created if new): online tracking."""
    check_identifier(body.id, "element id")
    _ensure_document(ctx, who, doc_id, project)
    row = {
        "id": body.id,
        "kind": body.kind,
        "label": body.label,
        "attributes": body.attributes,
        "start_time": body.start_time,
        "end_time": body.end_time,
        "document_id": doc_id,
    }
    member = {"document_id": doc_id, "element_id": body.id, "bundle": ""}
    with _store(ctx) as store:
        store.writer().insert_rows(
            {"prov_elements": [row], "prov_members": [member]}, {"prov_elements", "prov_members"}
        )
    return {k: row[k] for k in ("id", "kind", "label", "attributes")}


@router.get("/prov/documents/{doc_id}/elements", response_model=schemas.Items)
def list_elements(
    doc_id: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    _document(ctx, who, doc_id)
    query = (
        select(prov_elements)
        .join(prov_members, prov_members.c.element_id == prov_elements.c.id)
        .where(prov_members.c.document_id == doc_id)
        .order_by(prov_elements.c.id)
    )
    with ctx.db.engine.connect() as conn:
        return {"items": [_element(dict(r._mapping)) for r in conn.execute(query)]}


def _element(row: dict[str, Any]) -> dict[str, Any]:
    item = {k: row.get(k) for k in ("id", "kind", "label", "attributes")}
    for key in ("start_time", "end_time"):
        value = row.get(key)
        item[key] = value.isoformat() if isinstance(value, dt.datetime) else value
    return item


@router.get("/prov/elements/{element_id:path}", response_model=schemas.Element)
def get_element(
    element_id: str,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """One element, if it appears in a document the caller can see."""
    with ctx.db.engine.connect() as conn:
        row = conn.execute(select(prov_elements).where(prov_elements.c.id == element_id)).first()
        docs = [
            r[0]
            for r in conn.execute(
                select(prov_members.c.document_id).where(prov_members.c.element_id == element_id)
            )
        ]
    for doc_id in docs:
        try:
            _document(ctx, who, doc_id)
        except NotFoundError:
            continue
        if row is not None:
            return _element(dict(row._mapping))
    raise NotFoundError(f"no PROV element {element_id!r}")


@router.post("/prov/documents/{doc_id}/relations", status_code=201, response_model=schemas.Relation)
def add_relation(
    doc_id: str,
    body: schemas.RelationIn,
    project: Annotated[str | None, Query(max_length=64)] = None,
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
    _ensure_document(ctx, who, doc_id, project)
    row = {
        "document_id": doc_id,
        "bundle": None,
        "kind": body.kind,
        "subject": body.subject,
        "object": body.object,
        "attributes": body.attributes,
    }
    with _store(ctx) as store:
        store.writer().insert_rows({"prov_relations": [row]}, set())
    return {k: row[k] for k in ("kind", "subject", "object", "attributes")}


@router.get("/prov/documents/{doc_id}/relations", response_model=schemas.Items)
def list_relations(
    doc_id: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    _document(ctx, who, doc_id)
    query = select(prov_relations).where(prov_relations.c.document_id == doc_id)
    keys = ("kind", "subject", "object", "attributes", "bundle")
    with ctx.db.engine.connect() as conn:
        rows = conn.execute(query.order_by(prov_relations.c.id))
        return {"items": [{k: r._mapping[k] for k in keys} for r in rows]}


@router.get("/prov/lineage", response_model=schemas.ProvGraphOut)
def lineage(
    target: Annotated[str, Query(min_length=1, max_length=500)],
    direction: Annotated[str, Query(pattern="^(up|down|both)$")] = "up",
    depth: Annotated[int | None, Query(ge=0, le=1000)] = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """What ``target`` (an element id, ``sha256:…`` or a bare SHA-256) came from or fed."""
    with _store(ctx) as store:
        graph = store.lineage(
            target, direction, depth, projects=who.visible_projects(), files=False
        )
    return graph_json(graph)


@router.get("/runs/{run_id}/prov")
def run_provenance(
    run_id: str,
    format: Annotated[str, Query(pattern="^(json|provn|xml|ttl|rocrate|svg|graph)$")] = "json",
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> Response:
    """The run's PROV document: a text format, an RO-Crate zip, an SVG or graph JSON."""
    from twinengine.provenance import export_crate
    from twinengine.provenance.draw import to_svg

    run = visible_run(ctx, who, run_id)
    if run["state"] in ("queued", "running"):
        raise StateError(
            f"run {run['id']} is {run['state']}; its provenance is recorded at the end"
        )
    with _store(ctx) as store:
        if format in FORMATS:
            return PlainTextResponse(
                serialize(store.load(store.document_of_run(run["id"])), format),
                media_type=_MEDIA[format],
            )
        graph = store.load(store.document_of_run(run["id"]))
        if format == "svg":
            return Response(to_svg(graph), media_type="image/svg+xml")
        if format == "graph":
            return Response(_json(graph_json(graph)), media_type="application/json")
        with tempfile.TemporaryDirectory(dir=ctx.settings.home) as tmp:
            target = export_crate(run["id"], Path(tmp) / f"{run['id']}.crate.zip", store)
            data = target.read_bytes()
        return Response(
            data,
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{run["id"]}.crate.zip"'},
        )


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)

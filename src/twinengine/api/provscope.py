"""Which PROV documents and ids a caller may use: the rules the provenance routes share.

A document belongs to a project (its own, or its run's); :func:`document` returns it with
that ``scope`` only to a caller who may see it (404 otherwise, as for a missing one).
Document ids are one namespace for the server, so an id another project uses is
:func:`taken` (409, naming nothing else). A client document may name a run's elements
(``twin:run/<run>…``, compared as IRIs whatever prefix spells them) only for runs of its
own project (:func:`check_run_ids`, :func:`online_graph`).
:func:`open_store` gives a request its :class:`~twinengine.provenance.ProvStore`.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext
from twinengine.api.missing import missing_document
from twinengine.core import InvalidInputError, NotFoundError, StateError
from twinengine.core.models import prov_documents, runs
from twinengine.provenance import ProvGraph, ProvStore, canonical_graph
from twinengine.provenance.graph import Element, Relation

_DOC_ID = re.compile(r"^[A-Za-z0-9._-]{1,32}$")


@contextmanager
def open_store(ctx: ServerContext) -> Iterator[ProvStore]:
    """A ProvStore for one request (its SQLite writer belongs to the request's thread)."""
    store = ProvStore(ctx.db)
    try:
        yield store
    finally:
        store.close()


def document(ctx: ServerContext, who: Principal, doc_id: str, need: str = "viewer") -> dict:
    """The document ``doc_id`` with its ``scope`` (project), if the caller may see it."""
    with ctx.db.engine.connect() as conn:
        row = conn.execute(select(prov_documents).where(prov_documents.c.id == doc_id)).first()
    if row is None:
        raise missing_document(doc_id)
    doc = dict(row._mapping)
    with open_store(ctx) as store:
        doc["scope"] = store.project_of(doc_id)
    ctx.owned(who, doc["scope"] or None, need, missing_document(doc_id))
    return doc


def check_doc_id(doc_id: str) -> None:
    """A document id is 1-32 letters, digits, '.', '_' or '-'."""
    if not _DOC_ID.match(doc_id):
        raise InvalidInputError("a document id is 1-32 letters, digits, '.', '_' or '-'")


def taken(doc_id: str) -> StateError:
    """The refusal of a document id another project uses."""
    return StateError(
        f"the document id {doc_id!r} is not available", hint="choose another document id"
    )


def doc_exists(ctx: ServerContext, doc_id: str) -> bool:
    """Whether any project has a document ``doc_id``."""
    with ctx.db.engine.connect() as conn:
        query = select(prov_documents.c.id).where(prov_documents.c.id == doc_id)
        return conn.execute(query).first() is not None


def check_run_ids(ctx: ServerContext, named: Iterable[str], project: str) -> None:
    """The runs whose elements a document names (``twin:run/<run>…``, compared as IRIs:
    see :func:`~twinengine.provenance.run_ids`) only when they are runs of ``project``."""
    wanted = set(named)
    if not wanted:
        return
    with ctx.db.engine.connect() as conn:
        query = select(runs.c.id).where(runs.c.id.in_(wanted), runs.c.project == project)
        found = {r[0] for r in conn.execute(query)}
    for run in sorted(wanted - found):
        raise NotFoundError(
            f"no run {run!r} in project {project!r}",
            hint="twin:run/… ids name the elements of this project's runs",
        )


def online_graph(
    ctx: ServerContext,
    doc_id: str,
    elements: Iterable[Element] = (),
    relations: Iterable[Relation] = (),
) -> ProvGraph:
    """What the online routes add, as a graph with its ids in their one spelling under the
    namespaces the document ``doc_id`` declared (``t2:run/R`` with ``t2`` bound to
    TwinEngine's namespace is ``twin:run/R``)."""
    with ctx.db.engine.connect() as conn:
        query = select(prov_documents.c.namespaces).where(prov_documents.c.id == doc_id)
        spaces = conn.execute(query).scalar() or {}
    graph = ProvGraph(namespaces={k: str(v) for k, v in spaces.items() if k != "default"})
    for element in elements:
        graph.add(element)
    graph.relations.extend(relations)
    return canonical_graph(graph)


def save_document(ctx: ServerContext, graph: ProvGraph, doc_id: str, project: str) -> None:
    """Store a client's document ``doc_id`` in ``project`` (409 if the id was just taken)."""
    with open_store(ctx) as store:
        try:
            store.save(
                graph,
                name=doc_id,
                origin="client",
                check_kinds=False,
                project=project,
                document_id=doc_id,
            )
        except (IntegrityError, sqlite3.IntegrityError):  # made by another request just now
            raise taken(doc_id) from None

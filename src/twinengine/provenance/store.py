"""The provenance store: PROV documents in the metadata database, and the queries on them.

Documents, elements (shared between the documents of one project: the same file content
is one entity in every run of the project; each project has its own elements, so an id
never reaches into another project), members and relations live in four tables next to
the run records; no extra server. Lineage is one recursive SQL query (``WITH
RECURSIVE``, the same text on SQLite and PostgreSQL) over the relation table, walking
"depends on" edges upstream or downstream with an optional depth; every user value
reaches SQL as a bound parameter.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from typing import Any

from sqlalchemy import bindparam, delete, select, text

from twinengine.core import Database, NotFoundError, get_database, new_id
from twinengine.core.errors import InvalidInputError
from twinengine.core.models import (
    prov_documents,
    prov_elements,
    prov_members,
    prov_relations,
    runs,
)
from twinengine.provenance.graph import ProvGraph, file_sha256
from twinengine.provenance.rows import graph_from_rows, graph_rows
from twinengine.workflows.recordstore import (
    SqlAlchemyRecordStore,
    SqliteRecordStore,
    sqlite_file,
)

log = logging.getLogger(__name__)

# the walk: every element reachable from :start along "depends on" edges (up: subject to
# object; down: object to subject), at most :depth hops when a depth is given
_WALK = """
WITH RECURSIVE walk(id, depth) AS (
    SELECT :start, 0
    UNION
    SELECT r.{next}, walk.depth + 1
    FROM prov_relations r JOIN walk ON r.{this} = walk.id
    WHERE walk.depth < :depth{scope}
)
"""
_WALK_ALL = """
WITH RECURSIVE walk(id) AS (
    SELECT :start
    UNION
    SELECT r.{next} FROM prov_relations r JOIN walk ON r.{this} = walk.id
    WHERE 1 = 1{scope}
)
"""
_ELEMENTS = "SELECT e.* FROM prov_elements e WHERE e.id IN (SELECT id FROM walk){scope}"
# relations leaving a reached element in the walk's direction (their other end is reached
# too, except at the depth limit, which the caller filters)
_RELATIONS = (
    "SELECT r.kind, r.subject, r.object, r.attributes, r.bundle FROM prov_relations r"
    " WHERE r.{this} IN (SELECT id FROM walk){scope}"
)
DIRECTIONS = ("up", "down", "both")


class CaptureBackoff:
    """Runs whose PROV document could not be made (in this process, per database): the
    end time each had then and when to try it again."""

    def __init__(self, seconds: float = 60.0) -> None:
        self.seconds = seconds
        self.clock = time.monotonic
        self.failed: dict[tuple[str, str], tuple[Any, float]] = {}

    def due(self, key: tuple[str, str], ended: Any) -> bool:
        """Try this run now? Not while it waits, unless it ended anew (a resume)."""
        failed = self.failed.get(key)
        return failed is None or failed[0] != ended or self.clock() >= failed[1]

    def keep(self, keys: set[tuple[str, str]], database: str) -> None:
        """Forget the runs of ``database`` that need no capture any more."""
        for key in [k for k in self.failed if k[0] == database and k not in keys]:
            del self.failed[key]


_BACKOFF = CaptureBackoff()


# documents of some projects: their own (imported, client) and those of their runs
_IN_PROJECTS = (
    "SELECT d.id FROM prov_documents d LEFT JOIN runs ru ON ru.id = d.run_id"
    " WHERE d.project IN ({marks}) OR ru.project IN ({marks})"
)


def project_scope(projects: list[str] | None) -> tuple[str, str, dict[str, Any]]:
    """SQL restricting relations ``r`` to documents of ``projects`` and elements ``e`` to
    theirs: ``(relations, elements, parameters)`` (None: no limit)."""
    if projects is None:
        return "", "", {}
    params = {f"scope{i}": p for i, p in enumerate(projects)} or {"scope0": "\x00"}
    marks = ", ".join(f":{k}" for k in params)
    relations = f" AND r.document_id IN ({_IN_PROJECTS.format(marks=marks)})"
    return relations, f" AND e.project IN ({marks})", params


class ProvStore:
    """Save, load and query PROV documents."""

    def __init__(self, db: Database | None = None) -> None:
        self.db = db or get_database()
        self._writer: Any = None

    # -- documents ----------------------------------------------------------------
    def ensure_captured(self) -> list[str]:
        """Make the PROV document of every ended run that has none yet; returns their ids.

        Runs on the native path leave that to the first provenance query, so a run does
        not spend its own time on it (the file digests are in its records already). A
        run whose document cannot be made is tried again only once it ended anew (a
        resume) or a minute later, not on every query."""

        documented = select(prov_documents.c.run_id).where(
            prov_documents.c.origin == "run", prov_documents.c.run_id.is_not(None)
        )
        query = select(runs.c.id, runs.c.ended_at).where(
            runs.c.state.in_(("succeeded", "failed", "cancelled", "interrupted")),
            runs.c.id.not_in(documented),
        )
        database = str(self.db.engine.url)
        with self.db.engine.connect() as conn:
            pending = {(database, run_id): ended for run_id, ended in conn.execute(query)}
        _BACKOFF.keep(set(pending), database)
        made = []
        due = [(key, ended) for key, ended in pending.items() if _BACKOFF.due(key, ended)]
        if due:
            from twinengine.provenance.api import capture

            for key, ended in due:
                try:
                    capture(key[1], self)
                    made.append(key[1])
                    _BACKOFF.failed.pop(key, None)
                except Exception as exc:  # one run's records must not break every query
                    _BACKOFF.failed[key] = (ended, _BACKOFF.clock() + _BACKOFF.seconds)
                    log.warning("provenance of run %s could not be made: %s", key[1], exc)
        return made

    def save(
        self,
        graph: ProvGraph,
        *,
        name: str,
        origin: str = "import",
        run_id: str | None = None,
        attributes: dict[str, Any] | None = None,
        check_kinds: bool = True,
        project: str | None = None,
        document_id: str | None = None,
    ) -> str:
        """Store ``graph`` as a new document in one transaction; returns its id.

        ``check_kinds=False`` for documents from other producers, which may give one id
        two kinds (see :meth:`ProvGraph.check`)."""
        graph.check(kinds=check_kinds)
        document_id = document_id or new_id()
        rows = graph_rows(
            graph,
            document_id,
            name=name,
            origin=origin,
            run_id=run_id,
            attributes=attributes,
            project=project,
        )
        self.writer().insert_rows(rows, {"prov_elements", "prov_members"})
        return document_id

    def writer(self) -> Any:
        """Where rows are written: ``sqlite3`` directly for a SQLite file (several times
        faster for big documents), SQLAlchemy otherwise."""
        if self._writer is None:
            path = sqlite_file(str(self.db.engine.url))
            if path and self.db.is_sqlite:
                conn = sqlite3.connect(path, timeout=30, isolation_level=None)
                self._writer = SqliteRecordStore(conn)
            else:
                self._writer = SqlAlchemyRecordStore(self.db)
        return self._writer

    def close(self) -> None:
        """Close the direct SQLite writer, if one was opened (it belongs to its thread)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def documents(
        self, run_id: str | None = None, projects: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Stored documents (of one run; of some projects' runs and imports)."""
        query = select(prov_documents).order_by(prov_documents.c.created_at)
        if run_id is not None:
            query = query.where(prov_documents.c.run_id == run_id)
        if projects is not None:
            query = query.where(
                prov_documents.c.project.in_(projects)
                | prov_documents.c.run_id.in_(select(runs.c.id).where(runs.c.project.in_(projects)))
            )
        with self.db.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def document_of_run(self, run_id: str) -> str:
        self.ensure_captured()
        found = [d for d in self.documents(run_id) if d["origin"] == "run"]
        if not found:
            raise NotFoundError(
                f"run {run_id} has no provenance document",
                hint="runs record one when they end; `twin prov capture RUN_ID` makes it "
                "again and says why it cannot",
            )
        return found[-1]["id"]

    def load(self, document_id: str) -> ProvGraph:
        """The document ``document_id`` as a graph (its elements, relations, bundles)."""
        with self.db.engine.connect() as conn:
            doc = self._document_row(conn, document_id)
            members = [
                r._mapping
                for r in conn.execute(
                    select(prov_members).where(prov_members.c.document_id == document_id)
                )
            ]
            ids = sorted({m["element_id"] for m in members})
            elements = self._elements(conn, ids, self._scope_of(conn, doc))
            relations = [
                r._mapping
                for r in conn.execute(
                    select(prov_relations)
                    .where(prov_relations.c.document_id == document_id)
                    .order_by(prov_relations.c.id)
                )
            ]
        return graph_from_rows(doc.namespaces, elements, members, relations)

    def delete(self, document_id: str) -> None:
        with self.db.engine.begin() as conn:
            for table in (prov_relations, prov_members):
                conn.execute(delete(table).where(table.c.document_id == document_id))
            conn.execute(delete(prov_documents).where(prov_documents.c.id == document_id))

    def project_of(self, document_id: str) -> str:
        """The project whose elements a document lists (``""``: of no project)."""
        with self.db.engine.connect() as conn:
            return self._scope_of(conn, self._document_row(conn, document_id))

    @staticmethod
    def _document_row(conn: Any, document_id: str) -> Any:
        """The ``prov_documents`` row of ``document_id``; NotFoundError when there is none."""
        doc = conn.execute(select(prov_documents).where(prov_documents.c.id == document_id))
        found = doc.first()
        if found is None:
            raise NotFoundError(f"no PROV document {document_id!r}")
        return found

    @staticmethod
    def _scope_of(conn: Any, doc: Any) -> str:
        """A document's project, or its run's (run documents stored before 0005 have none)."""
        if doc.project is not None or doc.run_id is None:
            return doc.project or ""
        project = conn.execute(select(runs.c.project).where(runs.c.id == doc.run_id)).scalar()
        return project or ""

    @staticmethod
    def _elements(conn: Any, ids: list[str], project: str) -> list[Any]:
        found = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            query = select(prov_elements).where(
                prov_elements.c.id.in_(chunk), prov_elements.c.project == project
            )
            found.extend(r._mapping for r in conn.execute(query))
        return found

    # -- targets ------------------------------------------------------------------
    def resolve(self, target: str, files: bool = True, projects: list[str] | None = None) -> str:
        """The element id a user means: an element id, ``sha256:…``, a bare SHA-256, or
        (``files``) a path to a file, identified by its content; only elements of
        ``projects`` count (None: any)."""
        self.ensure_captured()
        candidates = [target]
        if len(target) == 64 and all(c in "0123456789abcdef" for c in target.lower()):
            candidates.append(f"sha256:{target.lower()}")
        if files and os.path.isfile(target):
            candidates.insert(0, f"sha256:{file_sha256(target)}")
        with self.db.engine.connect() as conn:
            for candidate in candidates:
                query = select(prov_elements.c.id).where(prov_elements.c.id == candidate)
                if projects is not None:
                    query = query.where(prov_elements.c.project.in_(projects))
                if conn.execute(query).first():
                    return candidate
        what = "file" if files and os.path.isfile(target) else "element"
        raise NotFoundError(
            f"no provenance for {what} {target!r}",
            hint="give a file a run used or produced, its sha256, or an element id "
            "(twin prov show RUN_ID lists them)",
        )

    # -- queries ------------------------------------------------------------------
    def lineage(
        self,
        target: str,
        direction: str = "up",
        depth: int | None = None,
        *,
        projects: list[str] | None = None,
        files: bool = True,
    ) -> ProvGraph:
        """Everything ``target`` depends on (``up``), depends on it (``down``), or both;
        ``depth`` limits the number of relation hops (None: all); ``projects`` limits the
        walk to those projects' documents; ``files=False`` never reads a local path."""
        if direction not in DIRECTIONS:
            raise InvalidInputError(f"unknown direction {direction!r}", hint="use up, down or both")
        if depth is not None and depth < 0:
            raise InvalidInputError("depth must be 0 or more")
        start = self.resolve(target, files, projects)
        scope, element_scope, scope_params = project_scope(projects)
        elements: dict[str, Any] = {}
        relations: dict[tuple[str, str, str], Any] = {}
        with self.db.engine.connect() as conn:
            for way in ("up", "down") if direction == "both" else (direction,):
                this, nxt = ("subject", "object") if way == "up" else ("object", "subject")
                walk = (_WALK_ALL if depth is None else _WALK).format(
                    this=this, next=nxt, scope=scope
                )
                params: dict[str, Any] = {"start": start, **scope_params}
                if depth is not None:
                    params["depth"] = depth
                for row in _rows(conn, walk + _ELEMENTS.format(scope=element_scope), params):
                    elements.setdefault(row["id"], row)  # an admin's walk: one row per id
                for row in _rows(conn, walk + _RELATIONS.format(this=this, scope=scope), params):
                    relations.setdefault((row["kind"], row["subject"], row["object"]), row)
        kept = [
            r for r in relations.values() if r["subject"] in elements and r["object"] in elements
        ]
        graph = graph_from_rows(None, list(elements.values()), [], kept)
        graph.members = {(e, "") for e in graph.elements}
        return graph

    def runs_using(self, target: str) -> list[str]:
        """Ids of the runs one of whose activities used ``target``."""
        element = self.resolve(target)
        query = select(prov_relations.c.subject).where(
            prov_relations.c.kind == "used", prov_relations.c.object == bindparam("e")
        )
        with self.db.engine.connect() as conn:
            subjects = [r[0] for r in conn.execute(query, {"e": element})]
        runs = []
        for subject in subjects:
            if subject.startswith("twin:run/"):
                run = subject.removeprefix("twin:run/").split("/", 1)[0]
                if run not in runs:
                    runs.append(run)
        return runs


def _rows(conn: Any, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows as dicts straight from the DB-API cursor (lineage reads thousands of them;
    SQLAlchemy's result rows and JSON type would double the time)."""
    result = conn.execute(text(sql), params)
    names = list(result.keys())
    return [dict(zip(names, row, strict=True)) for row in result.cursor.fetchall()]

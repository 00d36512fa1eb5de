"""The record store on any database TwinEngine supports, through SQLAlchemy Core.

:class:`SqlAlchemyRecordStore` writes run records to SQLite or PostgreSQL with the
tables of :mod:`twinengine.core.models`; rows a run shares with other runs (PROV
elements and members) are inserted with ``ON CONFLICT DO NOTHING`` on both dialects.
This module imports SQLAlchemy: :func:`~twinengine.workflows.recordstore.open_record_store`
imports it only when the fast embedded store cannot serve.
"""

from __future__ import annotations

import importlib
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update

from twinengine.core import models
from twinengine.core.models import prov_documents, prov_members, prov_relations, runs, steps
from twinengine.workflows.recordstore.base import RecordStore, update_shapes


class SqlAlchemyRecordStore(RecordStore):
    """Records through SQLAlchemy Core (SQLite or PostgreSQL)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def insert_run(self, values: dict[str, Any]) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(insert(runs).values(**values))

    def update_run(self, run_id: str, values: dict[str, Any], bump_attempt: bool = False) -> None:
        if bump_attempt:
            values = {**values, "attempt": runs.c.attempt + 1}
        with self.db.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def cancel_requested(self, run_id: str) -> bool:
        with self.db.engine.connect() as conn:
            query = select(runs.c.cancel_requested).where(runs.c.id == run_id)
            return bool(conn.execute(query).scalar())

    def write_steps(
        self,
        new_rows: list[dict[str, Any]],
        updates: list[dict[str, Any]],
        run: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        with self.db.engine.begin() as conn:
            if new_rows:
                conn.execute(insert(steps), new_rows)
            for cols, rows in update_shapes(updates).items():
                stmt = (
                    update(steps)
                    .where(steps.c.id == bindparam("_id"))
                    .values({c: bindparam(c) for c in cols})
                )
                conn.execute(stmt, [{"_id": r["id"], **{c: r[c] for c in cols}} for r in rows])
            if run is not None:
                conn.execute(update(runs).where(runs.c.id == run[0]).values(**run[1]))

    def step_ids(self, run_id: str) -> set[str]:
        with self.db.engine.connect() as conn:
            return set(conn.execute(select(steps.c.id).where(steps.c.run_id == run_id)).scalars())

    def succeeded_steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        query = select(steps.c.id, steps.c.cache_key, steps.c.outputs).where(
            steps.c.run_id == run_id,
            steps.c.state == "succeeded",
            steps.c.cache_key.is_not(None),
        )
        with self.db.engine.connect() as conn:
            return {r.cache_key: {"id": r.id, "outputs": r.outputs} for r in conn.execute(query)}

    def lookup_cache(self, cache_key: str) -> dict[str, Any] | None:
        query = (
            select(steps.c.id, steps.c.outputs)
            .where(steps.c.cache_key == cache_key, steps.c.state == "succeeded")
            .order_by(steps.c.ended_at.desc())
            .limit(1)
        )
        with self.db.engine.connect() as conn:
            row = conn.execute(query).first()
        return {"id": row.id, "outputs": row.outputs} if row else None

    def run_row(self, run_id: str) -> dict[str, Any] | None:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        return dict(row._mapping) if row else None

    def run_exists(self, run_id: str) -> bool:
        with self.db.engine.connect() as conn:
            return conn.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is not None

    def step_rows(self, run_id: str) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            found = conn.execute(select(steps).where(steps.c.run_id == run_id))
            return [dict(r._mapping) for r in found]

    def insert_rows(self, tables: dict[str, list[dict[str, Any]]], keep_existing: set[str]) -> None:
        dialect = self.db.engine.dialect.name
        with self.db.engine.begin() as conn:
            for name, rows in tables.items():
                if not rows:
                    continue
                table = getattr(models, name)
                if name in keep_existing and dialect in ("sqlite", "postgresql"):
                    module = importlib.import_module(f"sqlalchemy.dialects.{dialect}")
                    stmt = module.insert(table).on_conflict_do_nothing()
                else:
                    stmt = insert(table)
                conn.execute(stmt, rows)

    def delete_run_provenance(self, run_id: str) -> None:
        docs = select(prov_documents.c.id).where(
            prov_documents.c.run_id == run_id, prov_documents.c.origin == "run"
        )
        with self.db.engine.begin() as conn:
            conn.execute(delete(prov_relations).where(prov_relations.c.document_id.in_(docs)))
            conn.execute(delete(prov_members).where(prov_members.c.document_id.in_(docs)))
            conn.execute(delete(prov_documents).where(prov_documents.c.id.in_(docs)))

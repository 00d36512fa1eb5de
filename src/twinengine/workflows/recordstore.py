"""Where run records are written: SQLAlchemy in general, ``sqlite3`` for the embedded default.

:class:`~twinengine.workflows.records.RunRecorder` decides *what* to write and when;
a :class:`RecordStore` writes it. :class:`SqlAlchemyRecordStore` works on any database
TwinEngine supports. :class:`SqliteRecordStore` writes the embedded SQLite file through
the standard library, so that a ``twin run`` does not spend a third of a second
importing SQLAlchemy before its first job; it stores every value exactly as SQLAlchemy's
SQLite dialect does (JSON text with ``null`` for None, ``YYYY-MM-DD HH:MM:SS.ffffff``
timestamps, 0/1 booleans), so both read each other's rows — which
``tests/workflows/test_recordstore.py`` checks. It is used only on a database Alembic
has already brought to :data:`~twinengine.core.columns.HEAD_REVISION`; anything else
(a new file, an older schema, PostgreSQL) goes through SQLAlchemy, which migrates.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from typing import Any

from twinengine.core import Settings, get_database
from twinengine.core.columns import (
    BOOLEAN_COLUMNS,
    DATETIME_COLUMNS,
    HEAD_REVISION,
    JSON_COLUMNS,
)


class RecordStore(ABC):
    """The writes and few reads a running workflow makes."""

    @abstractmethod
    def insert_run(self, values: dict[str, Any]) -> None: ...

    @abstractmethod
    def update_run(self, run_id: str, values: dict[str, Any], bump_attempt: bool = False) -> None:
        """Set ``values`` on the run (and add one to ``attempt`` when asked)."""

    @abstractmethod
    def cancel_requested(self, run_id: str) -> bool: ...

    @abstractmethod
    def write_steps(
        self,
        new_rows: list[dict[str, Any]],
        updates: list[dict[str, Any]],
        run: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """Insert full step rows and apply partial updates (each with ``id``), atomically;
        ``run``: ``(run id, values)`` set on the run in the same transaction."""

    @abstractmethod
    def step_ids(self, run_id: str) -> set[str]: ...

    @abstractmethod
    def succeeded_steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Succeeded steps of the run with a cache key: ``{key: {id, outputs}}``."""

    @abstractmethod
    def lookup_cache(self, cache_key: str) -> dict[str, Any] | None:
        """The newest succeeded step of any run with ``cache_key``: ``{id, outputs}``."""

    @abstractmethod
    def run_row(self, run_id: str) -> dict[str, Any] | None:
        """The run's row as a dict (JSON decoded), or None."""

    @abstractmethod
    def run_exists(self, run_id: str) -> bool:
        """Whether the run has a record (without reading it)."""

    @abstractmethod
    def step_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The run's step rows as dicts (JSON decoded)."""

    @abstractmethod
    def insert_rows(self, tables: dict[str, list[dict[str, Any]]], keep_existing: set[str]) -> None:
        """Insert rows into several tables in one transaction; in ``keep_existing`` tables
        a row whose primary key is already there is skipped."""

    def replace_run_provenance(self, run_id: str, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Store a run's PROV document in place of the one an earlier attempt stored."""
        self.delete_run_provenance(run_id)
        self.insert_rows(tables, keep_existing={"prov_elements", "prov_members"})

    @abstractmethod
    def delete_run_provenance(self, run_id: str) -> None:
        """Remove the captured PROV documents of a run (elements stay: they are shared)."""

    def close(self) -> None:  # noqa: B027 - optional
        pass


def _update_shapes(updates: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Group partial updates by the columns they set (an executemany needs one shape)."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in updates:
        cols = tuple(sorted(k for k in row if k != "id"))
        if cols:
            shapes.setdefault(cols, []).append(row)
    return shapes


class SqlAlchemyRecordStore(RecordStore):
    """Records through SQLAlchemy Core (SQLite or PostgreSQL)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def insert_run(self, values: dict[str, Any]) -> None:
        from sqlalchemy import insert

        from twinengine.core.models import runs

        with self.db.engine.begin() as conn:
            conn.execute(insert(runs).values(**values))

    def update_run(self, run_id: str, values: dict[str, Any], bump_attempt: bool = False) -> None:
        from sqlalchemy import update

        from twinengine.core.models import runs

        if bump_attempt:
            values = {**values, "attempt": runs.c.attempt + 1}
        with self.db.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def cancel_requested(self, run_id: str) -> bool:
        from sqlalchemy import select

        from twinengine.core.models import runs

        with self.db.engine.connect() as conn:
            query = select(runs.c.cancel_requested).where(runs.c.id == run_id)
            return bool(conn.execute(query).scalar())

    def write_steps(
        self,
        new_rows: list[dict[str, Any]],
        updates: list[dict[str, Any]],
        run: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        from sqlalchemy import bindparam, insert, update

        from twinengine.core.models import runs, steps

        with self.db.engine.begin() as conn:
            if new_rows:
                conn.execute(insert(steps), new_rows)
            for cols, rows in _update_shapes(updates).items():
                stmt = (
                    update(steps)
                    .where(steps.c.id == bindparam("_id"))
                    .values({c: bindparam(c) for c in cols})
                )
                conn.execute(stmt, [{"_id": r["id"], **{c: r[c] for c in cols}} for r in rows])
            if run is not None:
                conn.execute(update(runs).where(runs.c.id == run[0]).values(**run[1]))

    def step_ids(self, run_id: str) -> set[str]:
        from sqlalchemy import select

        from twinengine.core.models import steps

        with self.db.engine.connect() as conn:
            return set(conn.execute(select(steps.c.id).where(steps.c.run_id == run_id)).scalars())

    def succeeded_steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        from sqlalchemy import select

        from twinengine.core.models import steps

        query = select(steps.c.id, steps.c.cache_key, steps.c.outputs).where(
            steps.c.run_id == run_id,
            steps.c.state == "succeeded",
            steps.c.cache_key.is_not(None),
        )
        with self.db.engine.connect() as conn:
            return {r.cache_key: {"id": r.id, "outputs": r.outputs} for r in conn.execute(query)}

    def lookup_cache(self, cache_key: str) -> dict[str, Any] | None:
        from sqlalchemy import select

        from twinengine.core.models import steps

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
        from sqlalchemy import select

        from twinengine.core.models import runs

        with self.db.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        return dict(row._mapping) if row else None

    def run_exists(self, run_id: str) -> bool:
        from sqlalchemy import select

        from twinengine.core.models import runs

        with self.db.engine.connect() as conn:
            return conn.execute(select(runs.c.id).where(runs.c.id == run_id)).first() is not None

    def step_rows(self, run_id: str) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from twinengine.core.models import steps

        with self.db.engine.connect() as conn:
            found = conn.execute(select(steps).where(steps.c.run_id == run_id))
            return [dict(r._mapping) for r in found]

    def insert_rows(self, tables: dict[str, list[dict[str, Any]]], keep_existing: set[str]) -> None:
        from sqlalchemy import insert

        from twinengine.core import models

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
        from sqlalchemy import delete, select

        from twinengine.core.models import prov_documents, prov_members, prov_relations

        docs = select(prov_documents.c.id).where(
            prov_documents.c.run_id == run_id, prov_documents.c.origin == "run"
        )
        with self.db.engine.begin() as conn:
            conn.execute(delete(prov_relations).where(prov_relations.c.document_id.in_(docs)))
            conn.execute(delete(prov_members).where(prov_members.c.document_id.in_(docs)))
            conn.execute(delete(prov_documents).where(prov_documents.c.id.in_(docs)))


def _sql_value(column: str, value: Any) -> Any:
    """A value as SQLAlchemy's SQLite dialect stores it."""
    if column in JSON_COLUMNS:
        return json.dumps(value)
    if value is None:
        return None
    if column in DATETIME_COLUMNS and isinstance(value, dt.datetime):
        return f"{value.year:04d}-{value:%m-%d %H:%M:%S.%f}"  # %Y does not pad years < 1000
    if column in BOOLEAN_COLUMNS:
        return int(bool(value))
    return value


def _py_value(column: str, value: Any) -> Any:
    """A stored value back as SQLAlchemy's SQLite dialect returns it."""
    if value is None:
        return None
    if column in JSON_COLUMNS:
        return json.loads(value)
    if column in DATETIME_COLUMNS:
        return dt.datetime.fromisoformat(value)
    if column in BOOLEAN_COLUMNS:
        return bool(value)
    return value


def _quoted(columns: tuple[str, ...] | list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


class SqliteRecordStore(RecordStore):
    """Records in the embedded SQLite file through the standard library."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        for pragma in ("synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
            conn.execute(f"PRAGMA {pragma}")

    def _write(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                conn.executemany(sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _insert(self, table: str, rows: list[dict[str, Any]]) -> tuple[str, list[tuple[Any, ...]]]:
        cols = list(rows[0])
        sql = f"INSERT INTO {table} ({_quoted(cols)}) VALUES ({', '.join('?' * len(cols))})"
        return sql, [tuple(_sql_value(c, row[c]) for c in cols) for row in rows]

    def insert_run(self, values: dict[str, Any]) -> None:
        self._write([self._insert("runs", [values])])

    def update_run(self, run_id: str, values: dict[str, Any], bump_attempt: bool = False) -> None:
        self._write([self._update_run(run_id, values, bump_attempt)])

    @staticmethod
    def _update_run(
        run_id: str, values: dict[str, Any], bump_attempt: bool = False
    ) -> tuple[str, list[tuple[Any, ...]]]:
        cols = list(values)
        sets = [f'"{c}" = ?' for c in cols]
        if bump_attempt:
            sets.append('"attempt" = "attempt" + 1')
        sql = f"UPDATE runs SET {', '.join(sets)} WHERE id = ?"
        return sql, [(*(_sql_value(c, values[c]) for c in cols), run_id)]

    def cancel_requested(self, run_id: str) -> bool:
        row = self.conn.execute("SELECT cancel_requested FROM runs WHERE id = ?", (run_id,))
        found = row.fetchone()
        return bool(found and found[0])

    def write_steps(
        self,
        new_rows: list[dict[str, Any]],
        updates: list[dict[str, Any]],
        run: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        statements = [self._insert("steps", new_rows)] if new_rows else []
        for cols, rows in _update_shapes(updates).items():
            sets = ", ".join(f'"{c}" = ?' for c in cols)
            params = [(*(_sql_value(c, r[c]) for c in cols), r["id"]) for r in rows]
            statements.append((f"UPDATE steps SET {sets} WHERE id = ?", params))
        if run is not None:
            statements.append(self._update_run(*run))
        if statements:
            self._write(statements)

    def step_ids(self, run_id: str) -> set[str]:
        rows = self.conn.execute("SELECT id FROM steps WHERE run_id = ?", (run_id,))
        return {r[0] for r in rows}

    def succeeded_steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT id, cache_key, outputs FROM steps WHERE run_id = ? AND state = 'succeeded'"
            " AND cache_key IS NOT NULL",
            (run_id,),
        )
        return {key: {"id": sid, "outputs": json.loads(out)} for sid, key, out in rows}

    def lookup_cache(self, cache_key: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT id, outputs FROM steps WHERE cache_key = ? AND state = 'succeeded'"
            " ORDER BY ended_at DESC LIMIT 1",
            (cache_key,),
        ).fetchone()
        return {"id": row[0], "outputs": json.loads(row[1])} if row else None

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
        cursor = self.conn.execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [{n: _py_value(n, v) for n, v in zip(names, row, strict=True)} for row in cursor]

    def run_row(self, run_id: str) -> dict[str, Any] | None:
        found = self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))
        return found[0] if found else None

    def run_exists(self, run_id: str) -> bool:
        found = self.conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
        return found is not None

    def step_rows(self, run_id: str) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM steps WHERE run_id = ?", (run_id,))

    def insert_rows(self, tables: dict[str, list[dict[str, Any]]], keep_existing: set[str]) -> None:
        statements = []
        for name, rows in tables.items():
            if rows:
                sql, params = self._insert(name, rows)
                if name in keep_existing:
                    sql = sql.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1)
                statements.append((sql, params))
        if statements:
            self._write(statements)

    def delete_run_provenance(self, run_id: str) -> None:
        docs = "SELECT id FROM prov_documents WHERE run_id = ? AND origin = 'run'"
        self._write(
            [
                (f"DELETE FROM prov_relations WHERE document_id IN ({docs})", [(run_id,)]),
                (f"DELETE FROM prov_members WHERE document_id IN ({docs})", [(run_id,)]),
                (f"DELETE FROM prov_documents WHERE id IN ({docs})", [(run_id,)]),
            ]
        )

    def close(self) -> None:
        self.conn.close()


def sqlite_file(url: str) -> str | None:
    """The file of a plain ``sqlite:///PATH`` URL (None for memory, options, other DBs)."""
    if not url.startswith("sqlite:///") or "?" in url:
        return None
    path = url[len("sqlite:///") :]
    return None if not path or path == ":memory:" else path


_KEPT = threading.local()


def open_record_store(settings: Settings, keep: bool = False) -> RecordStore:
    """The fastest store that can write the run records of ``settings``' database.

    ``keep``: a long-lived process running many runs (a run worker) gets this thread's
    store again instead of a new connection each run (it must not close it)."""
    if keep:
        kept = getattr(_KEPT, "stores", {}).get(settings.database_url)
        if kept is not None:
            return kept
        store = open_record_store(settings)
        _KEPT.__dict__.setdefault("stores", {})[settings.database_url] = store
        return store
    path = sqlite_file(settings.database_url)
    if path and os.path.exists(path):
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            row = None
        if row is not None and row[0] == HEAD_REVISION:
            return SqliteRecordStore(conn)
        conn.close()
    return SqlAlchemyRecordStore(get_database(settings))

"""The record store of the embedded SQLite file, through the standard library.

:class:`SqliteRecordStore` writes run records with ``sqlite3`` so that a ``twin run``
does not spend a third of a second importing SQLAlchemy before its first job. It stores
every value exactly as SQLAlchemy's SQLite dialect does (:func:`sql_value`: JSON text
with ``null`` for None, ``YYYY-MM-DD HH:MM:SS.ffffff`` timestamps, 0/1 booleans) and
reads them back the same way (:func:`py_value`), so both stores read each other's rows
— which ``tests/workflows/test_recordstore.py`` checks. :func:`sqlite_file` tells the
file of a plain SQLite URL.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Any

from twinengine.core.columns import BOOLEAN_COLUMNS, DATETIME_COLUMNS, JSON_COLUMNS
from twinengine.workflows.recordstore.base import RecordStore, update_shapes


def sql_value(column: str, value: Any) -> Any:
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


def py_value(column: str, value: Any) -> Any:
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
        return sql, [tuple(sql_value(c, row[c]) for c in cols) for row in rows]

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
        return sql, [(*(sql_value(c, values[c]) for c in cols), run_id)]

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
        for cols, rows in update_shapes(updates).items():
            sets = ", ".join(f'"{c}" = ?' for c in cols)
            params = [(*(sql_value(c, r[c]) for c in cols), r["id"]) for r in rows]
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
        return [{n: py_value(n, v) for n, v in zip(names, row, strict=True)} for row in cursor]

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

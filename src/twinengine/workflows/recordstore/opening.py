"""Which record store a process writes its run records with.

:func:`open_record_store` picks the fastest store that can write the database of the
settings: :class:`~.sqlite_store.SqliteRecordStore` for an embedded SQLite file Alembic
has already brought to :data:`~twinengine.core.columns.HEAD_REVISION`, else (a new
file, an older schema, PostgreSQL) :class:`~.sqlalchemy_store.SqlAlchemyRecordStore`,
which migrates. A long-lived process (a run worker) may keep one store per thread.
"""

from __future__ import annotations

import os
import sqlite3
import threading

from twinengine.core import Settings, get_database
from twinengine.core.columns import HEAD_REVISION
from twinengine.workflows.recordstore.base import RecordStore
from twinengine.workflows.recordstore.sqlite_store import SqliteRecordStore, sqlite_file

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
    # SQLAlchemy only now: the embedded file above never pays for importing it
    from twinengine.workflows.recordstore.sqlalchemy_store import SqlAlchemyRecordStore

    return SqlAlchemyRecordStore(get_database(settings))

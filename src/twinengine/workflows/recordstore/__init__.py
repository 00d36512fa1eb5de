"""Where run records are written: SQLAlchemy in general, ``sqlite3`` for the embedded default.

:class:`~twinengine.workflows.records.RunRecorder` decides *what* to write and when;
a :class:`RecordStore` (:mod:`.base`) writes it. :class:`SqlAlchemyRecordStore`
(:mod:`.sqlalchemy_store`) works on any database TwinEngine supports.
:class:`SqliteRecordStore` (:mod:`.sqlite_store`) writes the embedded SQLite file through
the standard library, so that a ``twin run`` does not spend a third of a second
importing SQLAlchemy before its first job; both read each other's rows.
:func:`open_record_store` (:mod:`.opening`) picks one for a process. SQLAlchemy is
imported on first use of :class:`SqlAlchemyRecordStore`, not with the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twinengine.core.lazy import lazy_exports
from twinengine.workflows.recordstore.base import RecordStore
from twinengine.workflows.recordstore.opening import open_record_store
from twinengine.workflows.recordstore.sqlite_store import SqliteRecordStore, sqlite_file

if TYPE_CHECKING:
    from twinengine.workflows.recordstore.sqlalchemy_store import SqlAlchemyRecordStore

__all__ = [
    "RecordStore",
    "SqlAlchemyRecordStore",
    "SqliteRecordStore",
    "open_record_store",
    "sqlite_file",
]

__getattr__, _ = lazy_exports(
    __name__, {"SqlAlchemyRecordStore": "twinengine.workflows.recordstore.sqlalchemy_store"}
)

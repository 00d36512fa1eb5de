"""The metadata database: SQLite (WAL) by default, PostgreSQL when configured.

:func:`open_database` creates the engine, applies pending Alembic migrations (checked
with one cheap query, so an up-to-date database costs nothing at start-up) and returns
a :class:`Database`. SQLite runs in WAL mode with ``synchronous=NORMAL`` so that the CLI,
a running workflow and the server can read and write the same file concurrently. Its
file is readable by its owner only (0600, and so are the ``-wal``/``-shm`` files SQLite
makes with the database's mode); a folder made for it is 0700.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from twinengine.core.columns import HEAD_REVISION
from twinengine.core.errors import ConfigError

__all__ = ["HEAD_REVISION", "Database", "close_all", "current_revision", "migrate", "open_database"]

_MIGRATIONS = Path(__file__).with_name("migrations")
_lock = threading.Lock()
_cache: dict[str, Database] = {}


class Database:
    """A migrated database; ``engine`` is a SQLAlchemy 2 engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def private_sqlite_file(path: str) -> None:
    """Create the SQLite file ``path`` 0600 (its folder 0700 when made here), and make an
    existing one, its ``-wal`` and ``-shm`` 0600 (when this user owns them)."""
    Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (path, f"{path}-wal", f"{path}-shm"):
        with contextlib.suppress(OSError):  # missing, or someone else's (read-only use)
            if os.stat(name).st_uid == os.geteuid():
                os.chmod(name, 0o600)


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = make_url(url).database or ""  # "sqlite://": an in-memory database
        if path and path != ":memory:" and not path.startswith("file:"):
            private_sqlite_file(path)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    try:
        return create_engine(url, pool_pre_ping=True)
    except (ImportError, SQLAlchemyError) as exc:
        raise ConfigError(
            f"cannot use database {url!r}: {exc}",
            hint="install the driver (pip install 'twinengine[postgres]') or fix TWIN_DATABASE_URL",
        ) from exc


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision stamped in the database, or None for an empty one."""
    with engine.connect() as conn:
        return _revision_on(conn)


def migrate(engine: Engine) -> None:
    """Apply all pending Alembic migrations to ``engine``.

    Several processes may open a new database at the same moment (two ``twin run`` s,
    a test runner with workers): the migration runs under a lock — a file lock next to
    a SQLite database, an advisory lock on PostgreSQL — and re-checks the revision
    once it holds it.
    """
    from alembic import command
    from alembic.config import Config
    from alembic.util.exc import CommandError

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with _migration_lock(engine), engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(7314159)"))
        if _revision_on(connection) == HEAD_REVISION:
            return
        config.attributes["connection"] = connection
        try:
            command.upgrade(config, "head")
        except CommandError as exc:  # stamped by a newer/different TwinEngine
            raise ConfigError(
                f"the metadata database {engine.url!r} was written by a newer or different "
                f"TwinEngine ({exc})",
                hint="upgrade TwinEngine, or point TWIN_DATABASE_URL at another database",
            ) from exc


def _revision_on(connection) -> str | None:  # type: ignore[no-untyped-def]
    """The stamped revision, asking first whether the table exists (a failed SELECT would
    abort a PostgreSQL transaction, and error texts differ between databases)."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    lock = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    with os.fdopen(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_database(url: str) -> Database:
    """Open (and migrate if needed) the database at ``url``; cached per URL and process."""
    with _lock:
        db = _cache.get(url)
        if db is not None:
            return db
        engine = _make_engine(url)
        try:
            if current_revision(engine) != HEAD_REVISION:
                migrate(engine)
        except SQLAlchemyError as exc:
            raise ConfigError(
                f"cannot open the metadata database {url!r}: {exc.__class__.__name__}: "
                f"{str(exc).splitlines()[0]}",
                hint="check TWIN_DATABASE_URL and that the database server is running",
            ) from exc
        db = Database(engine)
        _cache[url] = db
        return db


def close_all() -> None:
    """Dispose of every cached engine (used by tests)."""
    with _lock:
        for db in _cache.values():
            db.dispose()
        _cache.clear()

"""The SQLite metadata database: creation, Alembic migration, WAL mode, caching, concurrency."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

import twinengine.core
from twinengine.core import ConfigError, Database, TwinError, close_all, open_database
from twinengine.core import database as database_module
from twinengine.core.database import HEAD_REVISION, current_revision


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def alembic_versions(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


# --- a new database ---------------------------------------------------------------------


def test_open_creates_file_and_missing_parent_folders(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "twin.db"
    db = open_database(sqlite_url(path))
    assert isinstance(db, Database)
    assert db.is_sqlite
    assert path.is_file()


def test_new_database_is_migrated_to_head(tmp_path: Path) -> None:
    db = open_database(sqlite_url(tmp_path / "twin.db"))
    assert alembic_versions(db) == [HEAD_REVISION]
    assert current_revision(db.engine) == HEAD_REVISION


def test_head_revision_is_the_newest_migration_file() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(database_module._MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def test_new_database_has_the_core_tables_and_indexes(tmp_path: Path) -> None:
    db = open_database(sqlite_url(tmp_path / "twin.db"))
    inspector = inspect(db.engine)
    assert {"alembic_version", "runs", "steps"} <= set(inspector.get_table_names())
    assert {ix["name"] for ix in inspector.get_indexes("runs")} == {
        "ix_runs_state",
        "ix_runs_project",
    }
    assert {ix["name"] for ix in inspector.get_indexes("steps")} == {
        "ix_steps_run",
        "ix_steps_cache",
    }
    (fk,) = inspector.get_foreign_keys("steps")
    assert fk["referred_table"] == "runs"
    assert fk["constrained_columns"] == ["run_id"]


def test_migrated_schema_matches_the_models(tmp_path: Path) -> None:
    """The Alembic migrations and ``models.metadata`` describe the same schema."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from twinengine.core.models import metadata

    db = open_database(sqlite_url(tmp_path / "twin.db"))
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_current_revision_of_an_empty_database_is_none(tmp_path: Path) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(sqlite_url(tmp_path / "empty.db"))
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()


# --- SQLite connection settings -------------------------------------------------------------


def test_wal_journal_mode_is_on(tmp_path: Path) -> None:
    db = open_database(sqlite_url(tmp_path / "twin.db"))
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_wal_mode_is_persisted_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "twin.db"
    open_database(sqlite_url(path))
    close_all()
    with sqlite3.connect(path) as raw:  # a plain connection, without TwinEngine's pragmas
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_connection_pragmas(tmp_path: Path) -> None:
    db = open_database(sqlite_url(tmp_path / "twin.db"))
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def test_every_pooled_connection_gets_the_pragmas(tmp_path: Path) -> None:
    db = open_database(sqlite_url(tmp_path / "twin.db"))
    with db.engine.connect() as a, db.engine.connect() as b:
        for conn in (a, b):
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_connections_can_be_used_from_another_thread(tmp_path: Path) -> None:
    db = open_database(sqlite_url(tmp_path / "twin.db"))
    results: list[object] = []
    with db.engine.connect() as conn:

        def query() -> None:
            results.append(conn.execute(text("SELECT version_num FROM alembic_version")).scalar())

        worker = threading.Thread(target=query)
        worker.start()
        worker.join()
    assert results == [HEAD_REVISION]


def test_in_memory_database_is_migrated() -> None:
    db = open_database("sqlite://")
    assert db.is_sqlite
    assert alembic_versions(db) == [HEAD_REVISION]


def test_relative_sqlite_url_is_relative_to_cwd(twin_home: Path) -> None:
    db = open_database("sqlite:///data/rel.db")
    assert (twin_home / "data" / "rel.db").is_file()
    assert alembic_versions(db) == [HEAD_REVISION]


# --- opening again ----------------------------------------------------------------------


def test_opening_twice_returns_the_cached_database(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "twin.db")
    first = open_database(url)
    assert open_database(url) is first


def test_opening_twice_does_not_migrate_again(tmp_path: Path, monkeypatch) -> None:
    url = sqlite_url(tmp_path / "twin.db")
    open_database(url)
    close_all()  # forget the cached engine: the next open starts from scratch

    def no_migration(engine):  # type: ignore[no-untyped-def]
        raise AssertionError("an up-to-date database must not be migrated again")

    monkeypatch.setattr(database_module, "migrate", no_migration)
    db = open_database(url)
    assert alembic_versions(db) == [HEAD_REVISION]


def test_reopening_keeps_the_data(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "twin.db")
    with open_database(url).engine.begin() as conn:
        conn.execute(text("CREATE TABLE keep_me (x INTEGER)"))
        conn.execute(text("INSERT INTO keep_me VALUES (42)"))
    twinengine.core.reset()
    db = open_database(url)
    assert db is not None
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT x FROM keep_me")).scalar() == 42
    assert alembic_versions(db) == [HEAD_REVISION]


def test_reopening_is_cheap(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "twin.db")
    open_database(url)
    start = time.perf_counter()
    for _ in range(100):
        open_database(url)
    assert time.perf_counter() - start < 0.5  # a dict lookup, not a migration check


def test_reset_disposes_and_forgets_engines(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "twin.db")
    first = open_database(url)
    twinengine.core.reset()
    second = open_database(url)
    assert second is not first
    assert alembic_versions(second) == [HEAD_REVISION]


def test_migrate_is_idempotent(tmp_path: Path) -> None:
    db = open_database(sqlite_url(tmp_path / "twin.db"))
    database_module.migrate(db.engine)
    database_module.migrate(db.engine)
    assert alembic_versions(db) == [HEAD_REVISION]


def test_concurrent_opens_in_threads_share_one_database(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "twin.db")
    barrier = threading.Barrier(8)
    opened: list[Database] = []
    errors: list[BaseException] = []

    def opener() -> None:
        barrier.wait()
        try:
            opened.append(open_database(url))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(opened) == 8
    assert all(db is opened[0] for db in opened)
    assert alembic_versions(opened[0]) == [HEAD_REVISION]


# --- several processes on one new database --------------------------------------------------

OPENER = textwrap.dedent(
    """
    import sys, time
    from sqlalchemy import text
    from alembic import command  # noqa: F401  (imported before the start signal)
    from twinengine.core import open_database

    url, start_at = sys.argv[1], float(sys.argv[2])
    while time.time() < start_at:
        time.sleep(0.001)
    db = open_database(url)
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, name, workflow, state, created_at)"
                " VALUES (:id, 'p', 'wf.cwl', 'queued', CURRENT_TIMESTAMP)"
            ),
            {"id": sys.argv[3]},
        )
        print(conn.execute(text("SELECT version_num FROM alembic_version")).scalar())
    """
)


def run_openers(url: str, count: int, cwd: Path) -> list[subprocess.CompletedProcess[str]]:
    """Start ``count`` processes that open ``url`` at the same instant; wait for them all."""
    start_at = time.time() + 3.0  # enough for every interpreter to import SQLAlchemy/Alembic
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, url, repr(start_at), f"proc-{i}"],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(count)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def check_concurrent_openers(url: str, count: int, cwd: Path) -> None:
    """``count`` processes open a new database at once: all migrate-or-wait and write."""
    results = run_openers(url, count, cwd)
    for result in results:
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == HEAD_REVISION
    db = open_database(url)
    assert alembic_versions(db) == [HEAD_REVISION]
    with db.engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM runs ORDER BY id")).scalars().all()
    assert ids == [f"proc-{i}" for i in range(count)]


@pytest.mark.slow
def test_processes_migrating_one_new_database_at_once_all_succeed(tmp_path: Path) -> None:
    check_concurrent_openers(sqlite_url(tmp_path / "shared" / "twin.db"), 6, tmp_path)


# --- errors ---------------------------------------------------------------------------------


def test_unknown_database_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        open_database("nosuchdb://host/db")
    assert "nosuchdb://host/db" in info.value.message
    assert info.value.hint and "TWIN_DATABASE_URL" in info.value.hint


def test_missing_driver_is_a_config_error() -> None:
    pytest.importorskip("sqlalchemy.dialects.mysql")
    try:
        import MySQLdb  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover
        pytest.skip("the MySQL driver is installed here")
    with pytest.raises(ConfigError, match="install the driver"):
        open_database("mysql://user@127.0.0.1/twin")


def test_unreachable_server_is_a_config_error() -> None:
    pytest.importorskip("psycopg")
    url = "postgresql://postgres@127.0.0.1:1/twin"  # nothing listens on port 1
    with pytest.raises(ConfigError) as info:
        open_database(url)
    assert "cannot open the metadata database" in info.value.message
    assert url in info.value.message
    assert info.value.hint and "server is running" in info.value.hint
    twinengine.core.reset()
    # a failed open is not cached
    with pytest.raises(ConfigError):
        open_database(url)


def test_file_that_is_not_a_database_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an SQLite file" * 200)
    with pytest.raises(ConfigError, match="cannot open the metadata database"):
        open_database(sqlite_url(path))


def test_database_from_a_newer_version_is_a_twin_error(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "twin.db")
    with open_database(url).engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    twinengine.core.reset()
    with pytest.raises(TwinError):
        open_database(url)

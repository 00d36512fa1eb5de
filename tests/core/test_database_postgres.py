"""The metadata database on PostgreSQL: migration, round trip and concurrent openers.

Each test gets a database of its own (``CREATE DATABASE twin_test_<random>``), dropped at
the end. The module skips when no server answers at ``postgresql://postgres@127.0.0.1``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

import twinengine.core
from twinengine.core import ConfigError, close_all, open_database
from twinengine.core import database as database_module
from twinengine.core.database import HEAD_REVISION, current_revision

from .test_database import alembic_versions, check_concurrent_openers

pytestmark = pytest.mark.services

SERVER = "postgresql://postgres@127.0.0.1:5432"
CHECK_URL = f"{SERVER}/test"
ADMIN_URL = f"{SERVER}/postgres"


@pytest.fixture(scope="module")
def server() -> str:
    """The server URL, or a clean skip when PostgreSQL (or its driver) is not available."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        with psycopg.connect(CHECK_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL is not reachable at {CHECK_URL}: {exc}".splitlines()[0])
    return SERVER


@pytest.fixture
def pg_url(server: str) -> Iterator[str]:
    """The URL of a new, empty database, dropped after the test."""
    import psycopg

    name = f"twin_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{server}/{name}"
    finally:
        close_all()  # give back this process's connections before dropping
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_new_database_is_migrated(pg_url: str) -> None:
    db = open_database(pg_url)
    assert not db.is_sqlite
    assert db.engine.dialect.name == "postgresql"
    assert db.engine.dialect.driver == "psycopg"  # postgresql:// means psycopg 3
    assert alembic_versions(db) == [HEAD_REVISION]
    assert current_revision(db.engine) == HEAD_REVISION
    inspector = inspect(db.engine)
    assert {"alembic_version", "runs", "steps"} <= set(inspector.get_table_names())
    assert {ix["name"] for ix in inspector.get_indexes("steps")} == {
        "ix_steps_run",
        "ix_steps_cache",
    }


def test_migrated_schema_matches_the_models(pg_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from twinengine.core.models import metadata

    db = open_database(pg_url)
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_round_trip_of_runs_and_steps(pg_url: str, round_trip) -> None:
    round_trip(open_database(pg_url))


def test_datetimes_come_back_timezone_aware(pg_url: str, make_run) -> None:
    from sqlalchemy import insert, select

    from twinengine.core.models import runs

    db = open_database(pg_url)
    row = make_run()
    with db.engine.begin() as conn:
        conn.execute(insert(runs), row)
    with db.engine.connect() as conn:
        created = conn.execute(select(runs.c.created_at)).scalar()
    assert created.tzinfo is not None
    assert created == row["created_at"]


def test_opening_again_is_cached_and_does_not_migrate(pg_url: str, monkeypatch) -> None:
    first = open_database(pg_url)
    assert open_database(pg_url) is first
    twinengine.core.reset()

    def no_migration(engine):  # type: ignore[no-untyped-def]
        raise AssertionError("an up-to-date database must not be migrated again")

    monkeypatch.setattr(database_module, "migrate", no_migration)
    second = open_database(pg_url)
    assert second is not first
    assert alembic_versions(second) == [HEAD_REVISION]


def test_migrate_is_idempotent(pg_url: str) -> None:
    db = open_database(pg_url)
    database_module.migrate(db.engine)
    assert alembic_versions(db) == [HEAD_REVISION]


@pytest.mark.slow
def test_concurrent_openers_of_a_new_database_all_succeed(pg_url: str, tmp_path: Path) -> None:
    check_concurrent_openers(pg_url, 4, tmp_path)


def test_missing_database_is_a_config_error(server: str) -> None:
    url = f"{server}/twin_test_does_not_exist_{uuid.uuid4().hex[:8]}"
    with pytest.raises(ConfigError) as info:
        open_database(url)
    assert url in info.value.message
    assert "does not exist" in info.value.message

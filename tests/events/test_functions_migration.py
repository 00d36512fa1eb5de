"""Migration 0007 on databases written by 0006, on SQLite and on the local PostgreSQL:
functions keyed by (project, name) — existing ones and their calls keep their project,
two projects may then share a name — and back down, refused while names are shared."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.exc import IntegrityError

import twinengine.core.database as database

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"


def _to(engine: Engine, revision: str, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).with_name("migrations")))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def _postgres() -> Iterator[Engine]:
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed")
    try:
        with psycopg.connect(f"{PG_SERVER}/postgres", connect_timeout=3, autocommit=True) as c:
            name = f"twin_test_{uuid.uuid4().hex[:12]}"
            c.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_SERVER}: {exc}".splitlines()[0])
    engine = create_engine(f"{PG_SERVER}/{name}")
    try:
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.services)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        made = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
        yield made
        made.dispose()
    else:
        yield from _postgres()


def _function(conn, name: str, project: str) -> None:  # type: ignore[no-untyped-def]
    conn.execute(
        text(
            "INSERT INTO functions (name, project, kind, target, config, created_at)"
            " VALUES (:name, :project, 'command', 'cat', '{}', :now)"
        ),
        {"name": name, "project": project, "now": dt.datetime.now(dt.UTC)},
    )


def _call(conn, call_id: str, function: str) -> None:  # type: ignore[no-untyped-def]
    conn.execute(
        text(
            "INSERT INTO function_calls (id, function, state, created_at)"
            " VALUES (:id, :function, 'succeeded', :now)"
        ),
        {"id": call_id, "function": function, "now": dt.datetime.now(dt.UTC)},
    )


def test_functions_and_calls_move_to_their_projects_and_back(engine: Engine) -> None:
    _to(engine, "0006")
    with engine.begin() as conn:
        _function(conn, "clean", "alpha")
        _function(conn, "prep", "beta")
        _call(conn, "C1", "clean")
        _call(conn, "C2", "prep")
        _call(conn, "C3", "gone")  # its function deleted meanwhile: no project
        with pytest.raises(IntegrityError), conn.begin_nested():  # one name on the server
            _function(conn, "clean", "beta")
    _to(engine, "0007")
    with engine.begin() as conn:
        calls = conn.execute(text("SELECT id, project FROM function_calls ORDER BY id")).all()
        assert [tuple(c) for c in calls] == [("C1", "alpha"), ("C2", "beta"), ("C3", None)]
        _function(conn, "clean", "beta")  # the same name in another project
        with pytest.raises(IntegrityError), conn.begin_nested():  # but once per project
            _function(conn, "clean", "alpha")
        rows = conn.execute(text("SELECT project, name FROM functions ORDER BY project, name"))
        assert [tuple(r) for r in rows] == [("alpha", "clean"), ("beta", "clean"), ("beta", "prep")]
    schema = inspect(engine)
    assert schema.get_pk_constraint("functions")["constrained_columns"] == ["project", "name"]
    (index,) = [i for i in schema.get_indexes("function_calls") if i["name"].endswith("function")]
    assert index["column_names"] == ["project", "function", "created_at"]

    with pytest.raises(RuntimeError, match="several projects have a function named 'clean'"):
        _to(engine, "0006", down=True)
    with engine.begin() as conn:  # refused before anything changed
        assert conn.execute(text("SELECT COUNT(*) FROM functions")).scalar() == 3
        conn.execute(text("DELETE FROM functions WHERE project = 'beta' AND name = 'clean'"))
    _to(engine, "0006", down=True)
    schema = inspect(engine)
    assert schema.get_pk_constraint("functions")["constrained_columns"] == ["name"]
    assert "project" not in {c["name"] for c in schema.get_columns("function_calls")}
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, project FROM functions ORDER BY name")).all()
        assert [tuple(r) for r in rows] == [("clean", "alpha"), ("prep", "beta")]
        assert conn.execute(text("SELECT COUNT(*) FROM function_calls")).scalar() == 3
